// A hash that is the same in every build, on every platform: two multiply-xorshift lanes over
// 64-bit words, with a final avalanche. Plan ids hash the planning inputs with it (plan_id.cc);
// never std::hash or absl::Hash, which may differ between builds.
#ifndef FCP_SERVICE_PLANNER_STABLE_HASHER_H_
#define FCP_SERVICE_PLANNER_STABLE_HASHER_H_

#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace fcp {

class StableHasher {
 public:
  void Word(uint64_t v) {
    a_ = (a_ ^ v) * 0x9e3779b97f4a7c15ULL;
    a_ ^= a_ >> 29;
    b_ = (b_ + v) * 0xc2b2ae3d27d4eb4fULL;
    b_ ^= b_ >> 31;
  }
  void Int(int64_t v) { Word(static_cast<uint64_t>(v)); }
  void Double(double v) {
    uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    Word(bits);
  }
  void String(absl::string_view s) {
    Word(s.size());
    for (size_t i = 0; i < s.size(); i += 8) {
      uint64_t w = 0;
      for (size_t j = i; j < s.size() && j < i + 8; ++j) {
        w |= static_cast<uint64_t>(static_cast<unsigned char>(s[j])) << (8 * (j - i));
      }
      Word(w);
    }
  }
  std::string Hex() const {
    // Final avalanche so that nearby inputs give unrelated ids.
    auto mix = [](uint64_t x) {
      x ^= x >> 33;
      x *= 0xff51afd7ed558ccdULL;
      x ^= x >> 33;
      x *= 0xc4ceb9fe1a85ec53ULL;
      return x ^ (x >> 33);
    };
    return absl::StrFormat("%016x%016x", mix(a_), mix(b_ ^ a_));
  }

 private:
  uint64_t a_ = 0xcbf29ce484222325ULL;
  uint64_t b_ = 0x84222325cbf29ce4ULL;
};

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_STABLE_HASHER_H_
