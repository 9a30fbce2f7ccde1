// Runs a command-line binary for a test and captures what a user would see: exit code, stdout and
// stderr (through a temporary file private to this process, since ctest runs cases concurrently).
//
//   fcp::CliResult r = fcp::RunCli(FCP_BINARY, {"plan", "--workers", "0"});
//   EXPECT_EQ(r.code, 2);
#ifndef FCP_TESTS_CLI_RUNNER_H_
#define FCP_TESTS_CLI_RUNNER_H_

#include <string>
#include <vector>

namespace fcp {

struct CliResult {
  int code = -1;  // exit code, -1 if the binary could not be run or did not exit normally
  std::string out;
  std::string err;
};

// Runs `binary` with `args` (each passed as one argument, shell-quoted).
CliResult RunCli(const std::string& binary, const std::vector<std::string>& args);

// The whole file at `path` ("" if it cannot be read).
std::string ReadFileOrEmpty(const std::string& path);

// A path under the test temp dir, unique to this process: "<tmp>/fcp_<pid>_<name>".
std::string TestTempPath(const std::string& name);

}  // namespace fcp

#endif  // FCP_TESTS_CLI_RUNNER_H_
