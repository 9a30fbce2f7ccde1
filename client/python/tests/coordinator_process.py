"""fcp-coordinator (the binary named by FCP_COORDINATOR) as a child process, for the Python tests."""

import os
import re
import signal
import subprocess
import unittest


class CoordinatorProcess:
    """fcp-coordinator on ports it picks; stopped with SIGTERM."""

    def __init__(self, *flags):
        binary = os.environ["FCP_COORDINATOR"]
        self.process = subprocess.Popen(
            [binary, "--host", "127.0.0.1", "--port", "0", "--metrics-port", "-1", *flags],
            stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        match = re.search(r"on port (\d+)", line)
        if not match:
            self.process.kill()
            raise RuntimeError(f"fcp-coordinator did not start: {line!r}")
        self.target = f"127.0.0.1:{match.group(1)}"

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        self.process.stdout.close()
        return code


class CoordinatorTestCase(unittest.TestCase):
    """A test case with one fcp-coordinator process (cls.coordinator) for the whole class; it
    must exit 0 on SIGTERM at the end."""

    @classmethod
    def setUpClass(cls):
        cls.coordinator = CoordinatorProcess()

    @classmethod
    def tearDownClass(cls):
        assert cls.coordinator.stop() == 0
