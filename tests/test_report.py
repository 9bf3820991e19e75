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


def test_report_page_escapes_every_text_and_inlines_plots(tmp_path):
    from dialpref.report.html import write_report

    png = tmp_path / "plot.png"
    png.write_bytes(b"\x89PNG fake bytes")
    page = write_report(tmp_path / "r.html", "<script>alert(1)</script>", [
        ("figures & <tables>", [png, [{"name": "<b>bold</b>", "value": 1}], [], {"k": "<i>"}, "a < b"])]).read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "figures &amp; &lt;tables&gt;" in page and "<td>&lt;b&gt;bold&lt;/b&gt;</td>" in page
    assert "<p>(none)</p>" in page and "&#34;&lt;i&gt;&#34;" in page and "<p>a &lt; b</p>" in page
    assert 'src="data:image/png;base64,iVBORyBmYWtlIGJ5dGVz"' in page and page.endswith("</html>\n")
