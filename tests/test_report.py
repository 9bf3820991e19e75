"""The run report's plots name what their axes hold."""

from dialpref.report import plots


def test_confusion_rows_are_named_as_the_reference_they_hold(tmp_path, monkeypatch):
    closed = []
    monkeypatch.setattr(plots.plt, "close", closed.append)
    plots.plot_confusion(["a", "b"], ["a", "a"], ["a", "b"], tmp_path / "c.png", rows_label="teacher's label",
                         columns_label="student's label")
    ax = closed[0].axes[0]
    assert ax.get_ylabel() == "teacher's label" and ax.get_xlabel() == "student's label"
    assert (tmp_path / "c.png").stat().st_size > 0
