#include "tests/cli_runner.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"

namespace fcp {
namespace {

std::string Quote(const std::string& s) {
  return absl::StrCat("'", absl::StrReplaceAll(s, {{"'", "'\\''"}}), "'");
}

}  // namespace

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string TestTempPath(const std::string& name) {
  return absl::StrCat(testing::TempDir(), "/fcp_", getpid(), "_", name);
}

CliResult RunCli(const std::string& binary, const std::vector<std::string>& args) {
  const std::string err_path = TestTempPath("stderr.txt");
  std::string command = Quote(binary);
  for (const std::string& a : args) absl::StrAppend(&command, " ", Quote(a));
  absl::StrAppend(&command, " 2>", Quote(err_path));
  CliResult r;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return r;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) r.out.append(buffer, n);
  const int status = pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = ReadFileOrEmpty(err_path);
  return r;
}

}  // namespace fcp
