//===- WordPiece.cpp - BERT's WordPiece tokenization ----------------------===//

#include "Runtime/WordPiece.h"

#include "Runtime/Unicode.h"

#include <algorithm>
#include <iterator>

namespace kiln {

namespace {

struct CodepointRange {
  uint32_t first, last;
};
struct CodepointFold {
  uint32_t cp;
  uint32_t offset, length; // into kFoldPool
};

#include "Runtime/WordPieceTables.inc"

template <size_t N>
bool inRanges(const CodepointRange (&ranges)[N], uint32_t cp) {
  const CodepointRange *it = std::upper_bound(
      std::begin(ranges), std::end(ranges), cp,
      [](uint32_t v, const CodepointRange &r) { return v < r.first; });
  return it != std::begin(ranges) && cp <= std::prev(it)->last;
}

/// Appends the fold of `cp` in `table` (or `cp` itself) to `out`.
template <size_t N>
void appendFold(const CodepointFold (&table)[N], uint32_t cp,
                std::vector<uint32_t> &out) {
  const CodepointFold *it = std::lower_bound(
      std::begin(table), std::end(table), cp,
      [](const CodepointFold &f, uint32_t v) { return f.cp < v; });
  if (it == std::end(table) || it->cp != cp) {
    out.push_back(cp);
    return;
  }
  out.insert(out.end(), kFoldPool + it->offset,
             kFoldPool + it->offset + it->length);
}

// BERT's _is_chinese_char: the CJK Unified Ideographs blocks, not all of CJK.
bool isChineseChar(uint32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

// bert.rs is_whitespace (before the pre-tokenizer's char::is_whitespace).
bool isBertWhitespace(uint32_t cp) {
  if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r')
    return true;
  // Zs: the White_Space codepoints that are space separators.
  return cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// pre_tokenizers/bert.rs is_bert_punc: ASCII punctuation or \p{P}.
bool isBertPunctuation(uint32_t cp) {
  if (cp < 0x80)
    return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) ||
           (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126);
  return unicode::isPunctuation(cp);
}

// Unicode 3.12: a precomposed Hangul syllable's canonical decomposition.
void appendHangul(uint32_t cp, std::vector<uint32_t> &out) {
  uint32_t s = cp - 0xAC00;
  out.push_back(0x1100 + s / (21 * 28));
  out.push_back(0x1161 + (s % (21 * 28)) / 28);
  if (s % 28)
    out.push_back(0x11A7 + s % 28);
}

/// BertNormalizer over the codepoints of `text`.
std::vector<uint32_t> normalize(std::string_view text,
                                const WordPieceOptions &o) {
  std::vector<uint32_t> a;
  for (uint32_t cp : unicode::decodeUtf8Lossy(text)) {
    if (o.cleanText) {
      if (cp == 0 || cp == 0xFFFD ||
          (cp != '\t' && cp != '\n' && cp != '\r' && inRanges(kOtherRuns, cp)))
        continue;
      if (isBertWhitespace(cp))
        cp = ' ';
    }
    if (o.chineseChars && isChineseChar(cp)) {
      a.insert(a.end(), {' ', cp, ' '});
      continue;
    }
    a.push_back(cp);
  }
  if (o.stripAccents) {
    std::vector<uint32_t> b;
    for (uint32_t cp : a) {
      if (cp >= 0xAC00 && cp <= 0xD7A3)
        appendHangul(cp, b);
      else if (!inRanges(kMarkRuns, cp))
        appendFold(kDecompositions, cp, b);
    }
    a = std::move(b);
  }
  if (o.lowercase) {
    std::vector<uint32_t> b;
    for (uint32_t cp : a)
      appendFold(kLowercases, cp, b);
    a = std::move(b);
  }
  return a;
}

} // namespace

void encodeWordPiece(std::string_view text, const WordPieceOptions &options,
                     const std::function<int32_t(const std::string &)> &lookup,
                     int32_t unkId, std::vector<int32_t> &out) {
  std::vector<uint32_t> cps = normalize(text, options);
  // BertPreTokenizer: words end at whitespace; punctuation is a word alone.
  std::vector<std::vector<uint32_t>> words(1);
  for (uint32_t cp : cps) {
    if (unicode::isWhitespace(cp)) {
      words.emplace_back();
    } else if (isBertPunctuation(cp)) {
      words.push_back({cp});
      words.emplace_back();
    } else {
      words.back().push_back(cp);
    }
  }
  for (const std::vector<uint32_t> &word : words) {
    if (word.empty())
      continue;
    if (word.size() > options.maxCharsPerWord) {
      out.push_back(unkId);
      continue;
    }
    // Greedy longest match first, continuations with the subword prefix.
    std::vector<int32_t> pieces;
    size_t start = 0;
    while (start < word.size()) {
      int32_t found = -1;
      size_t end = word.size();
      for (; end > start; --end) {
        std::string piece = start ? options.subwordPrefix : std::string();
        for (size_t i = start; i < end; ++i)
          unicode::appendUtf8(piece, word[i]);
        found = lookup(piece);
        if (found >= 0)
          break;
      }
      if (found < 0)
        break;
      pieces.push_back(found);
      start = end;
    }
    if (start < word.size())
      out.push_back(unkId);
    else
      out.insert(out.end(), pieces.begin(), pieces.end());
  }
}

} // namespace kiln
