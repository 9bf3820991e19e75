"""Shared by the kill -9 tests: let a child store some cache rows, then kill it hard."""

import os
import signal
import sqlite3
import subprocess
import time


def kill_after_stored(child: subprocess.Popen, db, at_least: int, timeout: float, poll: float = 0.05) -> None:
    """Wait until the cache at `db` holds `at_least` calls (or `timeout` passes), then SIGKILL the child."""
    deadline, stored = time.time() + timeout, 0
    while time.time() < deadline and stored < at_least:
        time.sleep(poll)
        if db.exists():
            try:
                with sqlite3.connect(db) as conn:
                    stored = conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
            except sqlite3.OperationalError:
                pass
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
