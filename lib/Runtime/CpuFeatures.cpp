//===- CpuFeatures.cpp - host CPU features and host-code choice -----------===//

#include "Runtime/CpuFeatures.h"

#include "kiln/runtime/Artifact.h"

#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

using namespace kiln::rt;

#if defined(__x86_64__) || defined(__i386__)
static uint64_t readXCR0() {
  uint32_t eax, edx;
  // xgetbv with ecx = 0 (Intel SDM vol. 2B, XGETBV); only valid when
  // CPUID.1:ECX.OSXSAVE is set, which the caller checks.
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t(edx) << 32) | eax;
}

static uint64_t detectCpuid() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d))
    return 0;
  const bool osxsave = c & bit_OSXSAVE;
  const bool avx = c & bit_AVX;
  const bool fma = c & bit_FMA;
  const bool f16c = c & bit_F16C;
  if (!osxsave || !avx)
    return 0;
  uint64_t xcr0 = readXCR0();
  // XCR0 bits 1-2: SSE and AVX (ymm) state; 5-7: opmask, zmm0-15 upper halves,
  // zmm16-31. Without OS support the instructions fault even if cpuid has them.
  const bool ymmOS = (xcr0 & 0x6) == 0x6;
  const bool zmmOS = (xcr0 & 0xe6) == 0xe6;
  if (!ymmOS)
    return 0;
  uint64_t f = 0;
  if (fma)
    f |= KILN_CPU_FMA;
  if (f16c)
    f |= KILN_CPU_F16C;
  unsigned maxLeaf = __get_cpuid_max(0, nullptr);
  if (maxLeaf < 7)
    return f;
  __cpuid_count(7, 0, a, b, c, d);
  if (b & bit_AVX2)
    f |= KILN_CPU_AVX2;
  if (b & bit_BMI2)
    f |= KILN_CPU_BMI2;
  if (zmmOS) {
    if (b & bit_AVX512F)
      f |= KILN_CPU_AVX512F;
    if (b & bit_AVX512BW)
      f |= KILN_CPU_AVX512BW;
    if (b & bit_AVX512VL)
      f |= KILN_CPU_AVX512VL;
    if (b & bit_AVX512DQ)
      f |= KILN_CPU_AVX512DQ;
    if (b & bit_AVX512CD)
      f |= KILN_CPU_AVX512CD;
    if (c & bit_AVX512VNNI)
      f |= KILN_CPU_AVX512VNNI;
  }
  unsigned a1, b1, c1, d1;
  __cpuid_count(7, 1, a1, b1, c1, d1);
  if (a1 & bit_AVXVNNI)
    f |= KILN_CPU_AVXVNNI;
  if (zmmOS && (a1 & bit_AVX512BF16))
    f |= KILN_CPU_AVX512BF16;
  return f;
}
#else
static uint64_t detectCpuid() { return 0; }
#endif

uint64_t kiln::rt::detectHostCpuFeatures() {
  uint64_t f = detectCpuid();
  if (const char *mask = std::getenv("KILN_CPU_FEATURES")) {
    uint64_t allowed = 0;
    std::string s(mask);
    size_t start = 0;
    while (start <= s.size()) {
      size_t end = s.find(',', start);
      if (end == std::string::npos)
        end = s.size();
      allowed |= kiln::cpuFeatureFromName(s.substr(start, end - start).c_str());
      start = end + 1;
    }
    f &= allowed;
  }
  return f;
}

std::string kiln::rt::cpuFeatureNames(uint64_t features) {
  std::string out;
  for (const KilnCpuFeatureName &n : kKilnCpuFeatureNames) {
    if (!(features & n.bit))
      continue;
    if (!out.empty())
      out += ' ';
    out += n.name;
  }
  return out.empty() ? "none" : out;
}

int kiln::rt::chooseHostVariant(const std::vector<HostVariant> &variants,
                                uint64_t features, std::string &err) {
  int best = -1;
  int bestCount = -1;
  for (size_t i = 0; i < variants.size(); ++i) {
    const HostVariant &v = variants[i];
    if ((v.cpuFeatures & ~features) != 0)
      continue;
    int count = __builtin_popcountll(v.cpuFeatures);
    if (count > bestCount) {
      best = static_cast<int>(i);
      bestCount = count;
    }
  }
  if (best >= 0)
    return best;
  err = "no host code variant runs on this CPU (it has: " +
        cpuFeatureNames(features) + "):";
  for (const HostVariant &v : variants)
    err += " '" + v.section + "' needs missing " +
           cpuFeatureNames(v.cpuFeatures & ~features) + ";";
  err.pop_back();
  return -1;
}
