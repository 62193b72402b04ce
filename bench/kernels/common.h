// Shared by the Kiln and ggml kernel drivers: weight copies larger than the
// L3 (cold runs rotate over them), timing, and a one-line JSON result.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace bench {

inline std::vector<char> readFile(const char *path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) {
    std::fprintf(stderr, "cannot open %s\n", path);
    std::exit(1);
  }
  std::vector<char> data(size_t(f.tellg()));
  f.seekg(0);
  f.read(data.data(), data.size());
  return data;
}

/// Enough copies that cycling through them reads `rotateBytes` between two
/// reads of one copy (bench/run: 1 GiB, well past the last-level cache).
inline int coldCopies(size_t bytes, size_t rotateBytes) {
  return std::max<int>(2, int((rotateBytes + bytes - 1) / bytes));
}

inline void *alignedCopy(const std::vector<char> &src) {
  size_t size = (src.size() + 4095) / 4096 * 4096 + 4096;
  void *p = std::aligned_alloc(4096, size);
  std::memset(p, 0, size);
  std::memcpy(p, src.data(), src.size());
  return p;
}

inline double nowUs() {
  return std::chrono::duration<double, std::micro>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// `check`: a checksum of the output (sum of |y|), to see that both engines
/// computed the same product.
inline void report(const char *engine, std::vector<double> us, size_t bytes,
                   int copies, double check) {
  std::sort(us.begin(), us.end());
  double med = us[us.size() / 2];
  std::printf("{\"engine\": \"%s\", \"us_median\": %.3f, \"us_min\": %.3f, "
              "\"iters\": %zu, \"weight_bytes\": %zu, \"copies\": %d, "
              "\"y_abs_sum\": %.6g}\n",
              engine, med, us.front(), us.size(), bytes, copies, check);
}

} // namespace bench
