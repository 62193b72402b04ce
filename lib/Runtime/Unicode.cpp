//===- Unicode.cpp - codepoint classes and UTF-8 helpers ------------------===//

#include "Runtime/Unicode.h"

#include <algorithm>
#include <array>

namespace kiln {
namespace unicode {
namespace {

struct CodepointRun {
  uint32_t first;
  uint8_t flags;
};

#include "Runtime/UnicodeTables.inc"

uint8_t lookupFlags(uint32_t cp) {
  const CodepointRun *begin = std::begin(kCodepointRuns);
  const CodepointRun *end = std::end(kCodepointRuns);
  const CodepointRun *it = std::upper_bound(
      begin, end, cp, [](uint32_t value, const CodepointRun &run) {
        return value < run.first;
      });
  return (it - 1)->flags;
}

// ASCII is most of what real prompts contain; keep it off the binary search.
struct AsciiFlags {
  std::array<uint8_t, 128> flags{};
  AsciiFlags() {
    for (uint32_t c = 0; c < 128; ++c)
      flags[c] = lookupFlags(c);
  }
};

struct ByteMap {
  std::array<uint32_t, 256> toCodepoint{};
  // The mapped codepoints all lie below 0x144.
  std::array<int16_t, 0x144> toByte{};
  ByteMap() {
    toByte.fill(-1);
    auto printable = [](int b) {
      return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) ||
             (b >= 0xAE && b <= 0xFF);
    };
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      uint32_t cp = printable(b) ? uint32_t(b) : next++;
      toCodepoint[b] = cp;
      toByte[cp] = int16_t(b);
    }
  }
};

const AsciiFlags &asciiFlags() {
  static const AsciiFlags table;
  return table;
}

const ByteMap &byteMap() {
  static const ByteMap map;
  return map;
}

} // namespace

uint8_t codepointFlags(uint32_t cp) {
  if (cp < 128)
    return asciiFlags().flags[cp];
  if (cp >= 0x110000)
    return 0;
  return lookupFlags(cp);
}

size_t utf8SequenceLength(uint8_t lead) {
  static const uint8_t lengths[16] = {1, 1, 1, 1, 1, 1, 1, 1,
                                      1, 1, 1, 1, 2, 2, 3, 4};
  return lengths[lead >> 4];
}

std::vector<uint32_t> decodeUtf8Lossy(std::string_view text) {
  std::vector<uint32_t> out;
  out.reserve(text.size());
  size_t i = 0, n = text.size();
  auto cont = [&](size_t k) {
    return k < n && (uint8_t(text[k]) & 0xC0) == 0x80;
  };
  while (i < n) {
    uint8_t b = uint8_t(text[i]);
    // Mirrors llama.cpp's decoder: it checks lead and continuation bits but
    // not overlong forms, so neither do we (agreement matters more here).
    if (b < 0x80) {
      out.push_back(b);
      i += 1;
    } else if ((b & 0xE0) == 0xC0 && cont(i + 1)) {
      out.push_back(((b & 0x1Fu) << 6) | (uint8_t(text[i + 1]) & 0x3Fu));
      i += 2;
    } else if ((b & 0xF0) == 0xE0 && cont(i + 1) && cont(i + 2)) {
      out.push_back(((b & 0x0Fu) << 12) | ((uint8_t(text[i + 1]) & 0x3Fu) << 6) |
                    (uint8_t(text[i + 2]) & 0x3Fu));
      i += 3;
    } else if ((b & 0xF8) == 0xF0 && cont(i + 1) && cont(i + 2) &&
               cont(i + 3)) {
      out.push_back(((b & 0x07u) << 18) |
                    ((uint8_t(text[i + 1]) & 0x3Fu) << 12) |
                    ((uint8_t(text[i + 2]) & 0x3Fu) << 6) |
                    (uint8_t(text[i + 3]) & 0x3Fu));
      i += 4;
    } else {
      out.push_back(0xFFFD);
      i += 1;
    }
  }
  return out;
}

bool isValidUtf8(std::string_view text) {
  size_t i = 0, n = text.size();
  while (i < n) {
    uint8_t b = uint8_t(text[i]);
    size_t len;
    uint32_t cp, min;
    if (b < 0x80) {
      ++i;
      continue;
    } else if ((b & 0xE0) == 0xC0) {
      len = 2, cp = b & 0x1F, min = 0x80;
    } else if ((b & 0xF0) == 0xE0) {
      len = 3, cp = b & 0x0F, min = 0x800;
    } else if ((b & 0xF8) == 0xF0) {
      len = 4, cp = b & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (i + len > n)
      return false;
    for (size_t k = 1; k < len; ++k) {
      uint8_t c = uint8_t(text[i + k]);
      if ((c & 0xC0) != 0x80)
        return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

void appendUtf8(std::string &out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | ((cp >> 18) & 0x07)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

uint32_t byteToCodepoint(uint8_t byte) { return byteMap().toCodepoint[byte]; }

int codepointToByte(uint32_t cp) {
  if (cp >= byteMap().toByte.size())
    return -1;
  return byteMap().toByte[cp];
}

} // namespace unicode
} // namespace kiln
