"""A command's wall time and peak memory, measured in a process of its own.

Linux counts a process's peak RSS (``ru_maxrss``) from its fork, not its exec: a child
forked by a benchmark that holds a gigabyte of generated data starts at a gigabyte. So
the command is forked by a small launcher process (about 10 MiB), whose wait4 gives
the command's own peak.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

# Runs as `python -c LAUNCHER RESULT_PATH COMMAND...`: forks, execs the command, waits
# for it and writes (wait status, peak RSS in bytes) to RESULT_PATH.
LAUNCHER = """
import json, os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    json.dump([status, usage.ru_maxrss * 1024], out)
"""


def measured(command, timeout, cwd=None, stdout=subprocess.DEVNULL):
    """Run ``command`` (a list): (exit status or None when killed after ``timeout``
    seconds, seconds, peak RSS in bytes, its stderr as text)."""
    with tempfile.TemporaryDirectory() as scratch, tempfile.TemporaryFile() as stderr:
        result = os.path.join(scratch, "result.json")
        start = time.perf_counter()
        launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, result, *command],
                                    cwd=cwd, stdin=subprocess.DEVNULL, stdout=stdout,
                                    stderr=stderr, start_new_session=True)
        try:
            launcher.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
        seconds = time.perf_counter() - start
        stderr.seek(0)
        text = stderr.read().decode(errors="replace")
        if not os.path.exists(result):
            return None, seconds, 0, text
        with open(result, encoding="utf-8") as file:
            status, rss = json.load(file)
    return os.waitstatus_to_exitcode(status), seconds, rss, text
