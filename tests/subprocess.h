// A child process for tests: runs a binary with arguments, reads its stdout line by line (with a
// timeout), signals it and collects its exit code. The child's stderr is inherited (ctest shows
// it on failure).
//
//   fcp::Subprocess coordinator({FCP_COORDINATOR, "--port", "0"});
//   ASSERT_TRUE(coordinator.Start().ok());
//   absl::StatusOr<std::string> line = coordinator.ReadLine(absl::Seconds(10));
//   coordinator.Signal(SIGTERM);
//   EXPECT_EQ(coordinator.Wait(), 0);
#ifndef FCP_TESTS_SUBPROCESS_H_
#define FCP_TESTS_SUBPROCESS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace fcp {

class Subprocess {
 public:
  explicit Subprocess(std::vector<std::string> argv) : argv_(std::move(argv)) {}
  ~Subprocess();  // kills (SIGKILL) and reaps the child if it still runs

  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  absl::Status Start();
  // The next line of the child's stdout (without the newline); DeadlineExceeded after `timeout`,
  // OutOfRange at end of output.
  absl::StatusOr<std::string> ReadLine(absl::Duration timeout);
  void Signal(int signal);
  // Waits for the child to exit: its exit code, or 128 + signal if a signal killed it.
  int Wait();
  // The child's process id (-1 before Start and after Wait).
  int pid() const { return pid_; }

 private:
  std::vector<std::string> argv_;
  int pid_ = -1;
  int stdout_fd_ = -1;
  std::string buffered_;
};

}  // namespace fcp

#endif  // FCP_TESTS_SUBPROCESS_H_
