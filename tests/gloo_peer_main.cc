// One rank of a gloo job for gloo_multiprocess_test: joins the rendezvous, then runs rounds of an
// all-to-all and a ring exchange (every byte checked) and a barrier, printing "round N ok" after
// each and "done" at the end. On failure prints "error: <status>" and exits 1, after
// --release_file appears if set: a failed rank keeps its connections open until the test has
// heard every rank, so that no rank reports another survivor's exit instead of the real cause.
// --fail_rank dies (SIGKILL) or freezes (SIGSTOP) at the start of round --fail_round.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/clock.h"
#include "worker/transport/gloo_transport.h"
#include "worker/transport/transport_testing.h"

ABSL_FLAG(int32_t, rank, 0, "this rank");
ABSL_FLAG(int32_t, world, 1, "ranks in the job");
ABSL_FLAG(std::string, dir, "", "rendezvous directory");
ABSL_FLAG(std::string, prefix, "test", "rendezvous prefix");
ABSL_FLAG(int32_t, timeout_ms, 10000, "transport timeout");
ABSL_FLAG(int32_t, rounds, 3, "rounds of exchanges");
ABSL_FLAG(int64_t, bytes, 4096, "about how many bytes per buffer");
ABSL_FLAG(int32_t, fail_rank, -1, "the rank that fails");
ABSL_FLAG(int32_t, fail_round, -1, "the round at whose start it fails");
ABSL_FLAG(std::string, fail_how, "kill", "kill: SIGKILL itself; stop: SIGSTOP itself");
ABSL_FLAG(std::string, release_file, "", "after a failure, exit once this file exists");

namespace fcp {
namespace {

int Fail(const absl::Status& status) {
  std::printf("error: %s\n", status.ToString().c_str());
  std::fflush(stdout);
  const std::string release = absl::GetFlag(FLAGS_release_file);
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (!release.empty() && access(release.c_str(), F_OK) != 0 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  return 1;
}

int Main() {
  GlooOptions options;
  options.rank = absl::GetFlag(FLAGS_rank);
  options.world_size = absl::GetFlag(FLAGS_world);
  options.rendezvous_dir = absl::GetFlag(FLAGS_dir);
  options.prefix = absl::GetFlag(FLAGS_prefix);
  options.timeout = absl::Milliseconds(absl::GetFlag(FLAGS_timeout_ms));
  absl::StatusOr<std::unique_ptr<Transport>> transport = NewGlooTransport(options);
  if (!transport.ok()) return Fail(transport.status());
  const size_t bytes = absl::GetFlag(FLAGS_bytes);
  for (int32_t round = 0; round < absl::GetFlag(FLAGS_rounds); ++round) {
    if (options.rank == absl::GetFlag(FLAGS_fail_rank) &&
        round == absl::GetFlag(FLAGS_fail_round)) {
      raise(absl::GetFlag(FLAGS_fail_how) == "stop" ? SIGSTOP : SIGKILL);
    }
    absl::Status status = AllToAllPattern(**transport, 10 * round + 1, bytes);
    if (status.ok()) status = RingPattern(**transport, 10 * round + 2, bytes);
    if (status.ok()) status = (*transport)->Barrier();
    if (!status.ok()) return Fail(status);
    std::printf("round %d ok\n", round);
    std::fflush(stdout);
  }
  std::printf("done\n");
  return 0;
}

}  // namespace
}  // namespace fcp

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return fcp::Main();
}
