//===- CpuFeatures.h - host CPU features and host-code choice ---*- C++ -*-===//

#ifndef KILN_RUNTIME_CPUFEATURES_H
#define KILN_RUNTIME_CPUFEATURES_H

#include "Runtime/Manifest.h"

#include <cstdint>
#include <string>
#include <vector>

namespace kiln::rt {

/// KilnCpuFeature bits this CPU and OS support (cpuid + xgetbv: AVX-512 only
/// counts when the OS saves zmm/opmask state). The environment variable
/// KILN_CPU_FEATURES ("avx2,fma,f16c") can only narrow the set, never widen
/// it: it lets tests and users force a lower variant without risking SIGILL.
uint64_t detectHostCpuFeatures();

/// "avx512f avx512bw" for a bitmask; "none" for 0.
std::string cpuFeatureNames(uint64_t features);

/// Index of the best host variant that `features` can run: the one requiring
/// the most features, manifest order breaking ties. -1 with a message naming
/// each variant's missing features if none can run.
int chooseHostVariant(const std::vector<HostVariant> &variants,
                      uint64_t features, std::string &err);

} // namespace kiln::rt

#endif // KILN_RUNTIME_CPUFEATURES_H
