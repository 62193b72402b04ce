//===- Unicode.h - codepoint classes and UTF-8 helpers for the tokenizer --===//
//
// Plain C++17, no MLIR/LLVM. The classes are the ones the GPT-2-style
// pre-tokenizer regexes use (\p{L}, \p{N}, \p{P}, \p{S}, \p{M}, \s); the
// table behind them is generated from Python's unicodedata by
// scripts/gen-unicode-tables.py.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_UNICODE_H
#define KILN_RUNTIME_UNICODE_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kiln {
namespace unicode {

enum CodepointFlag : uint8_t {
  kLetter = 1,      // \p{L}
  kNumber = 2,      // \p{N}
  kWhitespace = 4,  // \s (White_Space)
  kPunctuation = 8, // \p{P}
  kSymbol = 16,     // \p{S}
  kMark = 32,       // \p{M}
};

/// Flags of `cp` (a combination of CodepointFlag); 0 for anything else,
/// including codepoints past U+10FFFF.
uint8_t codepointFlags(uint32_t cp);

inline bool isLetter(uint32_t cp) { return codepointFlags(cp) & kLetter; }
inline bool isNumber(uint32_t cp) { return codepointFlags(cp) & kNumber; }
inline bool isWhitespace(uint32_t cp) {
  return codepointFlags(cp) & kWhitespace;
}
inline bool isPunctuation(uint32_t cp) {
  return codepointFlags(cp) & kPunctuation;
}

/// Length of the UTF-8 sequence that starts with `lead`, judged from its high
/// nibble only (1 for stray continuation bytes), the way SentencePiece-style
/// symbol splitting walks text.
size_t utf8SequenceLength(uint8_t lead);

/// Decodes UTF-8, replacing every byte that does not start a well-formed
/// sequence with U+FFFD and moving on by one byte. llama.cpp decodes the same
/// way, so malformed input tokenizes identically.
std::vector<uint32_t> decodeUtf8Lossy(std::string_view text);

/// Strict check: no overlong forms, surrogates or codepoints past U+10FFFF.
bool isValidUtf8(std::string_view text);

void appendUtf8(std::string &out, uint32_t cp);

/// GPT-2 byte-level BPE maps every byte to a printable codepoint so that
/// merges never see raw control bytes or spaces.
uint32_t byteToCodepoint(uint8_t byte);
/// Inverse of byteToCodepoint; -1 for a codepoint no byte maps to.
int codepointToByte(uint32_t cp);

} // namespace unicode
} // namespace kiln

#endif // KILN_RUNTIME_UNICODE_H
