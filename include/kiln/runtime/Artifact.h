/*===- Artifact.h - the on-disk layout of a .kiln artifact ----------------===*
 *
 * Plain C structs and constants, shared by the compiler's writer
 * (lib/Compiler/ArtifactWriter) and the runtime's verifying loader
 * (lib/Runtime/Artifact.cpp). Everything is little-endian.
 *
 *   offset 0                       KilnArtifactHeader (128 bytes)
 *   header.sectionTableOffset      KilnSectionEntry[sectionCount]
 *   entry.offset (aligned)         section bytes, in file order, no overlap
 *
 * (Offsets count from the artifact's first byte, also when it is embedded in
 * an executable: see KilnExecutableTrailer.)
 *
 * Every section carries an XXH64 checksum of its bytes; the header and the
 * section table carry their own, so no field is trusted before it is checked.
 * XXH64 is used because it runs at several GB/s in portable scalar C++, which
 * keeps verifying a multi-gigabyte weights section cheap on every load.
 *
 *===----------------------------------------------------------------------===*/

#ifndef KILN_RUNTIME_ARTIFACT_H
#define KILN_RUNTIME_ARTIFACT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_ARTIFACT_MAGIC "KILNART" /* 8 bytes with its NUL */
#define KILN_ARTIFACT_FORMAT_VERSION 1u

/* Limits the loader enforces (and the writer respects). */
#define KILN_ARTIFACT_MAX_SECTIONS 256u
#define KILN_ARTIFACT_SECTION_NAME_SIZE 32u
#define KILN_ARTIFACT_MAX_ALIGNMENT 65536u
#define KILN_ARTIFACT_GPU_ARCHS_SIZE 56u

/* Default alignments: weights are page-aligned so they can be mapped and used
 * in place; everything else is cache-line aligned. */
#define KILN_ARTIFACT_WEIGHTS_ALIGNMENT 4096u
#define KILN_ARTIFACT_DEFAULT_ALIGNMENT 64u

typedef enum KilnSectionKind {
  KILN_SECTION_MANIFEST = 1,  /* JSON, see lib/Runtime/Manifest.h */
  KILN_SECTION_VOCAB = 2,     /* JSON read by kiln::Tokenizer::fromJSON */
  KILN_SECTION_HOST_CODE = 3, /* one ELF shared object per CPU variant */
  KILN_SECTION_PTX = 4,       /* PTX text (manifest cuda.images) */
  KILN_SECTION_CUBIN = 5,     /* a CUDA ELF image (manifest cuda.images) */
  KILN_SECTION_WEIGHTS = 6,
} KilnSectionKind;

/* CPU features a host-code variant may require. The manifest names them
 * (lower-case strings below); the header's minimum is a bitmask of them. */
typedef enum KilnCpuFeature {
  KILN_CPU_AVX2 = 1u << 0,
  KILN_CPU_FMA = 1u << 1,
  KILN_CPU_F16C = 1u << 2,
  KILN_CPU_AVX512F = 1u << 3,
  KILN_CPU_AVX512BW = 1u << 4,
  KILN_CPU_AVX512VL = 1u << 5,
  KILN_CPU_AVX512DQ = 1u << 6,
  KILN_CPU_AVX512CD = 1u << 7,
  KILN_CPU_AVX512VNNI = 1u << 8,
  KILN_CPU_AVX512BF16 = 1u << 9,
  KILN_CPU_AVXVNNI = 1u << 10,
  KILN_CPU_BMI2 = 1u << 11,
} KilnCpuFeature;

typedef struct KilnCpuFeatureName {
  uint64_t bit;
  const char *name;
} KilnCpuFeatureName;

static const KilnCpuFeatureName kKilnCpuFeatureNames[] = {
    {KILN_CPU_AVX2, "avx2"},
    {KILN_CPU_FMA, "fma"},
    {KILN_CPU_F16C, "f16c"},
    {KILN_CPU_AVX512F, "avx512f"},
    {KILN_CPU_AVX512BW, "avx512bw"},
    {KILN_CPU_AVX512VL, "avx512vl"},
    {KILN_CPU_AVX512DQ, "avx512dq"},
    {KILN_CPU_AVX512CD, "avx512cd"},
    {KILN_CPU_AVX512VNNI, "avx512vnni"},
    {KILN_CPU_AVX512BF16, "avx512bf16"},
    {KILN_CPU_AVXVNNI, "avxvnni"},
    {KILN_CPU_BMI2, "bmi2"},
};

typedef struct KilnArtifactHeader {
  char magic[8];                 /*   0: KILN_ARTIFACT_MAGIC with its NUL */
  uint32_t formatVersion;        /*   8: KILN_ARTIFACT_FORMAT_VERSION */
  uint32_t headerSize;           /*  12: sizeof(KilnArtifactHeader) */
  uint64_t flags;                /*  16: none defined yet; must be 0 */
  uint32_t sectionCount;         /*  24: <= KILN_ARTIFACT_MAX_SECTIONS */
  uint32_t sectionEntrySize;     /*  28: sizeof(KilnSectionEntry) */
  uint64_t sectionTableOffset;   /*  32: 8-byte aligned */
  uint64_t fileSize;             /*  40: the whole file; catches truncation */
  uint64_t minCpuFeatures;       /*  48: features every host variant needs;
                                         each variant lists its own set in the
                                         manifest */
  uint64_t sectionTableChecksum; /* 56: XXH64 of the section table */
  char gpuArchs[KILN_ARTIFACT_GPU_ARCHS_SIZE]; /* 64: comma-separated
                                       ("sm_90a,sm_80"), NUL-padded; for
                                       people and tools: the runtime reads
                                       the manifest's cuda.images */
  uint64_t headerChecksum; /* 120: XXH64 of bytes [0, 120) */
} KilnArtifactHeader;

typedef struct KilnSectionEntry {
  char name[KILN_ARTIFACT_SECTION_NAME_SIZE]; /* NUL-terminated, unique */
  uint32_t kind;                              /* KilnSectionKind */
  uint32_t flags;                             /* none defined yet; must be 0 */
  uint64_t offset;                            /* multiple of alignment */
  uint64_t size;
  uint64_t alignment; /* power of two, <= KILN_ARTIFACT_MAX_ALIGNMENT */
  uint64_t checksum;  /* XXH64 (seed 0) of the section bytes */
  uint64_t reserved;  /* must be 0 */
} KilnSectionEntry;

/* An executable from `kiln-compile --emit=exe` is the runtime program
 * (kiln-exe-stub) with an artifact appended, unchanged, at a multiple of
 * KILN_EXECUTABLE_ARTIFACT_ALIGNMENT (64 KiB: a page boundary for every page
 * size, so its weights are mapped in place), then this trailer as the file's
 * last bytes. The loader reads the trailer of any file that starts with the
 * ELF magic; the artifact inside is verified as a .kiln file would be. */
#define KILN_EXECUTABLE_MAGIC "KILNEXE" /* 8 bytes with its NUL */
#define KILN_EXECUTABLE_ARTIFACT_ALIGNMENT 65536u

typedef struct KilnExecutableTrailer {
  uint64_t artifactOffset; /* multiple of KILN_EXECUTABLE_ARTIFACT_ALIGNMENT */
  uint64_t artifactSize;   /* the artifact ends where the trailer starts */
  char magic[8];           /* KILN_EXECUTABLE_MAGIC with its NUL */
} KilnExecutableTrailer;

#ifdef __cplusplus
static_assert(sizeof(KilnArtifactHeader) == 128, "header layout is fixed");
static_assert(sizeof(KilnSectionEntry) == 80, "entry layout is fixed");
static_assert(sizeof(KilnExecutableTrailer) == 24, "trailer layout is fixed");
#endif

#ifdef __cplusplus
} /* extern "C" */

#include <cstring>

namespace kiln {

/// XXH64 (https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md,
/// "XXH64 algorithm description"), scalar and endian-explicit so the writer
/// and the loader agree on every host.
class XXH64 {
public:
  explicit XXH64(uint64_t seed = 0) : seed(seed) {
    acc[0] = seed + kPrime1 + kPrime2;
    acc[1] = seed + kPrime2;
    acc[2] = seed;
    acc[3] = seed - kPrime1;
  }

  void update(const void *data, size_t size) {
    const uint8_t *p = static_cast<const uint8_t *>(data);
    total += size;
    if (bufferUsed + size < 32) {
      std::memcpy(buffer + bufferUsed, p, size);
      bufferUsed += size;
      return;
    }
    if (bufferUsed) {
      size_t take = 32 - bufferUsed;
      std::memcpy(buffer + bufferUsed, p, take);
      consumeStripe(buffer);
      p += take;
      size -= take;
      bufferUsed = 0;
    }
    for (; size >= 32; p += 32, size -= 32)
      consumeStripe(p);
    std::memcpy(buffer, p, size);
    bufferUsed = size;
  }

  uint64_t digest() const {
    uint64_t h;
    if (total >= 32) {
      h = rotl(acc[0], 1) + rotl(acc[1], 7) + rotl(acc[2], 12) +
          rotl(acc[3], 18);
      for (uint64_t a : acc)
        h = (h ^ round(0, a)) * kPrime1 + kPrime4;
    } else {
      h = seed + kPrime5;
    }
    h += total;
    const uint8_t *p = buffer;
    size_t n = bufferUsed;
    for (; n >= 8; p += 8, n -= 8)
      h = rotl(h ^ round(0, read64(p)), 27) * kPrime1 + kPrime4;
    if (n >= 4) {
      h = rotl(h ^ (uint64_t(read32(p)) * kPrime1), 23) * kPrime2 + kPrime3;
      p += 4;
      n -= 4;
    }
    for (; n; ++p, --n)
      h = rotl(h ^ (uint64_t(*p) * kPrime5), 11) * kPrime1;
    h ^= h >> 33;
    h *= kPrime2;
    h ^= h >> 29;
    h *= kPrime3;
    h ^= h >> 32;
    return h;
  }

  static uint64_t hash(const void *data, size_t size, uint64_t seed = 0) {
    XXH64 h(seed);
    h.update(data, size);
    return h.digest();
  }

private:
  static constexpr uint64_t kPrime1 = 0x9E3779B185EBCA87ULL;
  static constexpr uint64_t kPrime2 = 0xC2B2AE3D27D4EB4FULL;
  static constexpr uint64_t kPrime3 = 0x165667B19E3779F9ULL;
  static constexpr uint64_t kPrime4 = 0x85EBCA77C2B2AE63ULL;
  static constexpr uint64_t kPrime5 = 0x27D4EB2F165667C5ULL;

  static uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
  static uint64_t round(uint64_t a, uint64_t input) {
    return rotl(a + input * kPrime2, 31) * kPrime1;
  }
  static uint64_t read64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i)
      v = (v << 8) | p[i];
    return v;
  }
  static uint32_t read32(const uint8_t *p) {
    return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 |
           uint32_t(p[3]) << 24;
  }
  void consumeStripe(const uint8_t *p) {
    for (int i = 0; i < 4; ++i)
      acc[i] = round(acc[i], read64(p + 8 * i));
  }

  uint64_t seed;
  uint64_t acc[4];
  uint64_t total = 0;
  uint8_t buffer[32];
  size_t bufferUsed = 0;
};

/// The checksum stored in KilnArtifactHeader::headerChecksum.
inline uint64_t artifactHeaderChecksum(const KilnArtifactHeader &h) {
  return XXH64::hash(&h, offsetof(KilnArtifactHeader, headerChecksum));
}

/// Name of a KilnSectionKind for messages ("manifest", "host code", ...).
inline const char *sectionKindName(uint32_t kind) {
  switch (kind) {
  case KILN_SECTION_MANIFEST:
    return "manifest";
  case KILN_SECTION_VOCAB:
    return "vocab";
  case KILN_SECTION_HOST_CODE:
    return "host code";
  case KILN_SECTION_PTX:
    return "ptx";
  case KILN_SECTION_CUBIN:
    return "cubin";
  case KILN_SECTION_WEIGHTS:
    return "weights";
  default:
    return nullptr;
  }
}

/// The KilnCpuFeature bit for a manifest feature name, 0 if unknown.
inline uint64_t cpuFeatureFromName(const char *name) {
  for (const KilnCpuFeatureName &f : kKilnCpuFeatureNames)
    if (std::strcmp(f.name, name) == 0)
      return f.bit;
  return 0;
}

} // namespace kiln
#endif /* __cplusplus */

#endif /* KILN_RUNTIME_ARTIFACT_H */
