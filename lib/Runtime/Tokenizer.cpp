//===- Tokenizer.cpp - byte-level BPE and SentencePiece-style tokenizers --===//
//
// Behaviour follows llama.cpp's (src/llama-vocab.cpp, src/unicode.cpp) so that
// ids agree for the same GGUF vocabulary; where llama.cpp's behaviour is a
// quirk rather than a choice, the comment says so. The code is our own.
//
//===----------------------------------------------------------------------===//

#include "Runtime/Tokenizer.h"

#include "Runtime/Unicode.h"
#include "Runtime/WordPiece.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <queue>
#include <unordered_map>
#include <utility>

namespace kiln {

namespace {

using nlohmann::json;

// GGUF token types (tokenizer.ggml.token_type).
enum TokenType : uint8_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

enum class ModelKind { BytePairGpt2, SentencePiece, WordPiece };

// Pre-tokenizers: each is one of llama.cpp's regex sets, written as a scanner.
enum class PreTokenizer {
  // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
  Gpt2,
  // \p{N} split off one by one first, then Gpt2 on what is between.
  DigitsThenGpt2,
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
  //  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  Llama3,
  // Llama3 with \p{N} instead of \p{N}{1,3}.
  Qwen2,
  // llama.cpp's DEFAULT: four regexes, each splitting the pieces the one
  // before left (the gaps between matches stay pieces too):
  //   [\p{P}\$\+<=>\^~\|]+   then Gpt2   then \p{N}+   then [0-9][0-9][0-9]
  Default,
  // Default with '`' in the first regex and no \p{N}+ step.
  Falcon,
  // BLOOM's one regex:  ?[^(\s|.,!?…。，、।۔،)]+
  Bloom,
  // Bloom, then \p{N} split off one by one.
  Viking,
  // GPT-4o's (Llama 4's), as llama.cpp runs it (scanCaseSplit):
  //   [^\r\n\p{L}\p{N}]?U*L+C?|[^\r\n\p{L}\p{N}]?U+L*C?|\p{N}{1,3}|
  //    ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
  // with C = (?i:'s|'t|'re|'ve|'m|'ll|'d), U and L upper and lower case.
  Gpt4o,
  // Tekken (Mistral NeMo): Gpt4o without C, with \p{N} instead of
  // \p{N}{1,3}.
  Tekken,
  // DeepSeek V3's three regexes, each splitting the pieces the one before
  // left (scanDeepSeek3): \p{N}{1,3}, then [一-龥぀-ゟ゠-ヿ]+, then
  //   [!-/:-@[-`{-~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|
  //    ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  DeepSeek3,
  // DeepSeek LLM's six regexes in sequence (scanDeepSeek): [\r\n], then
  // \s? and a run of its letter ranges, \s? and a run of [!-/:-~！-／：-～‘-‟　-。],
  // \s+$, [一-龥ࠀ-一가-퟿]+, \p{N}+.
  DeepSeekLlm,
  // DeepSeek Coder's five: [\r\n], \s?\p{L}+, \s?\p{P}+, [一-龥ࠀ-一가-퟿]+,
  // \p{N}.
  DeepSeekCoder,
};

struct PreInfo {
  PreTokenizer kind;
  bool ignoreMerges; // a word that is itself a token skips the merges
  bool addBosDefault;
  bool cleanSpaces; // llama.cpp's clean_up_tokenization_spaces on decode
};

// The `pre` names llama.cpp maps to the regex sets above, with the flags its
// vocabulary loader sets for them.
bool lookupPre(const std::string &name, PreInfo &info) {
  struct Entry {
    const char *name;
    PreInfo info;
  };
  static const Entry entries[] = {
      // llama.cpp also falls back to DEFAULT when the GGUF has no `pre` key
      // (the importer writes "" then), with a warning that quality suffers;
      // older conversions are like that.
      {"default", {PreTokenizer::Default, false, false, true}},
      {"", {PreTokenizer::Default, false, false, true}},
      {"gpt2", {PreTokenizer::Gpt2, false, false, true}},
      {"gpt-2", {PreTokenizer::Gpt2, false, false, true}},
      {"phi-2", {PreTokenizer::Gpt2, false, false, true}},
      {"mpt", {PreTokenizer::Gpt2, false, false, true}},
      {"olmo", {PreTokenizer::Gpt2, false, false, true}},
      {"smollm", {PreTokenizer::DigitsThenGpt2, false, false, false}},
      {"starcoder", {PreTokenizer::DigitsThenGpt2, false, false, true}},
      {"refact", {PreTokenizer::DigitsThenGpt2, false, false, true}},
      {"codeshell", {PreTokenizer::DigitsThenGpt2, false, false, true}},
      {"command-r", {PreTokenizer::DigitsThenGpt2, false, false, false}},
      {"llama3", {PreTokenizer::Llama3, true, true, true}},
      {"llama-v3", {PreTokenizer::Llama3, true, true, true}},
      {"llama-bpe", {PreTokenizer::Llama3, true, true, true}},
      {"falcon3", {PreTokenizer::Llama3, true, true, true}},
      {"pixtral", {PreTokenizer::Llama3, true, true, true}},
      {"dbrx", {PreTokenizer::Llama3, false, false, true}},
      {"smaug-bpe", {PreTokenizer::Llama3, false, false, true}},
      {"qwen2", {PreTokenizer::Qwen2, false, false, false}},
      {"deepseek-r1-qwen", {PreTokenizer::Qwen2, false, false, false}},
      {"stablelm2", {PreTokenizer::Qwen2, false, false, true}},
      // Names llama.cpp (llama-vocab.cpp, llama_vocab::impl::load) gives the
      // same regex sets and flags as those above.
      {"jina-es", {PreTokenizer::Gpt2, false, false, true}},
      {"jina-de", {PreTokenizer::Gpt2, false, false, true}},
      {"gigachat", {PreTokenizer::Gpt2, false, false, true}},
      {"a.x-4.0", {PreTokenizer::Gpt2, false, false, true}},
      {"mellum", {PreTokenizer::Gpt2, false, false, true}},
      {"jais", {PreTokenizer::Gpt2, false, false, true}},
      {"trillion", {PreTokenizer::Gpt2, false, false, false}},
      {"granite-docling", {PreTokenizer::Gpt2, false, false, false}},
      {"exaone4", {PreTokenizer::Gpt2, false, false, true}},
      {"exaone", {PreTokenizer::DigitsThenGpt2, false, false, true}},
      {"minerva-7b", {PreTokenizer::DigitsThenGpt2, false, false, true}},
      {"mellum2", {PreTokenizer::DigitsThenGpt2, false, false, true}},
      {"falcon-h1", {PreTokenizer::Llama3, true, true, true}},
      {"midm-2.0", {PreTokenizer::Llama3, true, true, true}},
      {"lfm2", {PreTokenizer::Llama3, true, true, true}},
      {"jina-v5-nano", {PreTokenizer::Llama3, true, true, true}},
      {"kormo", {PreTokenizer::Qwen2, false, false, false}},
      {"f2llmv2", {PreTokenizer::Qwen2, false, false, false}},
      {"megrez", {PreTokenizer::Qwen2, false, false, true}},
      {"hunyuan", {PreTokenizer::Qwen2, false, false, false}},
      {"solar-open", {PreTokenizer::Qwen2, false, false, false}},
      {"grok-2", {PreTokenizer::Qwen2, false, false, false}},
      {"falcon", {PreTokenizer::Falcon, false, false, true}},
      {"bloom", {PreTokenizer::Bloom, false, false, true}},
      {"gpt3-finnish", {PreTokenizer::Bloom, false, false, true}},
      {"poro-chat", {PreTokenizer::Bloom, false, false, false}},
      {"viking", {PreTokenizer::Viking, false, false, false}},
      {"jina-v2-es", {PreTokenizer::Gpt2, false, false, true}},
      {"jina-v2-de", {PreTokenizer::Gpt2, false, false, true}},
      {"modern-bert", {PreTokenizer::Gpt2, false, false, true}},
      {"chatglm-bpe", {PreTokenizer::Llama3, false, false, true}},
      {"glm4", {PreTokenizer::Llama3, true, false, true}},
      {"glm5", {PreTokenizer::Llama3, true, false, true}},
      {"gpt-4o", {PreTokenizer::Gpt4o, false, false, false}},
      {"llama4", {PreTokenizer::Gpt4o, false, false, false}},
      {"kanana2", {PreTokenizer::Gpt4o, false, false, false}},
      {"talkie", {PreTokenizer::Gpt4o, false, false, false}},
      {"minimax-m2", {PreTokenizer::Gpt4o, false, false, false}},
      {"tekken", {PreTokenizer::Tekken, true, true, false}},
      {"deepseek-llm", {PreTokenizer::DeepSeekLlm, false, false, false}},
      {"deepseek-coder", {PreTokenizer::DeepSeekCoder, false, false, false}},
      {"deepseek-v3", {PreTokenizer::DeepSeek3, false, false, false}},
      {"hunyuan-dense", {PreTokenizer::DeepSeek3, false, false, false}},
      {"joyai-llm", {PreTokenizer::DeepSeek3, false, false, false}},
      {"hy_v4", {PreTokenizer::DeepSeek3, false, false, false}},
  };
  for (const Entry &e : entries) {
    if (name == e.name) {
      info = e.info;
      return true;
    }
  }
  return false;
}

// Token texts llama.cpp treats as end of generation (and forces to control
// type) whatever the GGUF says about them.
bool isEogText(const std::string &t) {
  static const char *names[] = {
      "<|eot_id|>",     "<|im_end|>",  "<|end|>",           "<|return|>",
      "<|call|>",       "<end_of_turn>", "<|endoftext|>",   "<|eom_id|>",
      "<EOT>",          "_<EOT>",      "<|end_of_text|>",   "<end_of_utterance>",
  };
  for (const char *n : names)
    if (t == n)
      return true;
  return false;
}

// FIM pad/repo/separator tokens, which llama.cpp also stops generation on.
bool isFimEogText(const std::string &t) {
  static const char *names[] = {
      "<|fim_pad|>", "<fim-pad>",  "<fim_pad>", "<PAD>",       "<|fim_repo|>",
      "<|repo_name|>", "<fim-repo>", "<REPO>",  "<reponame>", "<|file_sep|>",
  };
  for (const char *n : names)
    if (t == n)
      return true;
  return false;
}

// FIM prefix/suffix/middle tokens: llama.cpp forces them to control type.
bool isFimControlText(const std::string &t) {
  static const char *names[] = {
      "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<PRE>", "\xE2\x96\x81<PRE>",
      "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<SUF>", "\xE2\x96\x81<SUF>",
      "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<MID>", "\xE2\x96\x81<MID>",
  };
  for (const char *n : names)
    if (t == n)
      return true;
  return false;
}

const char kSpaceMarker[] = "\xE2\x96\x81"; // U+2581, SentencePiece's space

// A span of the input: raw text still to tokenize, or a special token.
struct Fragment {
  int32_t token; // -1 for raw text
  size_t offset;
  size_t length;
};

// Word boundaries in codepoint indices.
using Span = std::pair<size_t, size_t>;

bool asciiLowerIs(uint32_t cp, char c) {
  if (cp >= 'A' && cp <= 'Z')
    cp += 'a' - 'A';
  return cp == uint32_t(c);
}

// The 's|'t|'re|'ve|'m|'ll|'d alternatives: length of the match at `pos`
// (0 if none). `anyCase` is Llama-3's (?i:...).
size_t matchContraction(const std::vector<uint32_t> &cps, size_t pos,
                        size_t end, bool anyCase) {
  if (cps[pos] != '\'' || pos + 1 >= end)
    return 0;
  auto is = [&](size_t k, char c) {
    return anyCase ? asciiLowerIs(cps[k], c) : cps[k] == uint32_t(c);
  };
  size_t n = pos + 1;
  if (is(n, 's') || is(n, 't') || is(n, 'm') || is(n, 'd'))
    return 2;
  if (pos + 2 < end &&
      ((is(n, 'r') && is(n + 1, 'e')) || (is(n, 'v') && is(n + 1, 'e')) ||
       (is(n, 'l') && is(n + 1, 'l'))))
    return 3;
  return 0;
}

// GPT-2's regex over cps[begin, end); the regex sees nothing outside.
void scanGpt2(const std::vector<uint32_t> &cps, size_t begin, size_t end,
              std::vector<Span> &words) {
  auto flags = [&](size_t k) -> uint8_t {
    return k < end ? unicode::codepointFlags(cps[k]) : 0;
  };
  auto inRange = [&](size_t k) { return k < end; };
  size_t pos = begin;
  while (pos < end) {
    size_t start = pos;
    if (size_t n = matchContraction(cps, pos, end, /*anyCase=*/false)) {
      words.push_back({start, start + n});
      pos += n;
      continue;
    }
    // " ?" then a run of one class. The optional space only counts when a
    // run follows it; otherwise the space belongs to the whitespace rules.
    size_t runStart = pos + (cps[pos] == ' ' ? 1 : 0);
    uint8_t f = flags(runStart);
    if (inRange(runStart) && (f & unicode::kLetter)) {
      pos = runStart;
      while (inRange(pos) && (flags(pos) & unicode::kLetter))
        ++pos;
      words.push_back({start, pos});
      continue;
    }
    if (inRange(runStart) && (f & unicode::kNumber)) {
      pos = runStart;
      while (inRange(pos) && (flags(pos) & unicode::kNumber))
        ++pos;
      words.push_back({start, pos});
      continue;
    }
    const uint8_t wordish =
        unicode::kLetter | unicode::kNumber | unicode::kWhitespace;
    if (inRange(runStart) && !(f & wordish)) {
      pos = runStart;
      while (inRange(pos) && !(flags(pos) & wordish))
        ++pos;
      words.push_back({start, pos});
      continue;
    }
    size_t spaces = 0;
    while (inRange(pos + spaces) && (flags(pos + spaces) & unicode::kWhitespace))
      ++spaces;
    if (spaces > 1 && inRange(pos + spaces)) {
      // \s+(?!\S): leave the last whitespace to prefix the next word.
      pos += spaces - 1;
    } else {
      pos += spaces ? spaces : 1;
    }
    words.push_back({start, pos});
  }
}

// The whitespace rules that end Llama-3's regex and its kin:
// \s*[\r\n]+|\s+(?!\S)|\s+ at cps[pos], a whitespace codepoint; returns the
// match's end.
size_t matchTrailingWhitespace(const std::vector<uint32_t> &cps, size_t pos,
                               size_t end) {
  size_t spaces = 0, lastNewlineEnd = 0;
  while (pos + spaces < end &&
         (unicode::codepointFlags(cps[pos + spaces]) & unicode::kWhitespace)) {
    if (cps[pos + spaces] == '\r' || cps[pos + spaces] == '\n')
      lastNewlineEnd = pos + spaces + 1;
    ++spaces;
  }
  if (lastNewlineEnd)
    return lastNewlineEnd; // \s*[\r\n]+
  if (spaces > 1 && pos + spaces < end)
    return pos + spaces - 1; // \s+(?!\S)
  return pos + (spaces ? spaces : 1); // \s+
}

// Llama-3's regex (and Qwen2's, with maxDigits = 1) over cps[begin, end).
void scanLlama3(const std::vector<uint32_t> &cps, size_t begin, size_t end,
                size_t maxDigits, std::vector<Span> &words) {
  auto flags = [&](size_t k) -> uint8_t {
    return k < end ? unicode::codepointFlags(cps[k]) : 0;
  };
  auto inRange = [&](size_t k) { return k < end; };
  auto isCrLf = [&](size_t k) {
    return inRange(k) && (cps[k] == '\r' || cps[k] == '\n');
  };
  const uint8_t wordish =
      unicode::kLetter | unicode::kNumber | unicode::kWhitespace;
  size_t pos = begin;
  while (pos < end) {
    size_t start = pos;
    uint32_t cp = cps[pos];
    uint8_t f = flags(pos);
    if (size_t n = matchContraction(cps, pos, end, /*anyCase=*/true)) {
      words.push_back({start, start + n});
      pos += n;
      continue;
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (!(cp == '\r' || cp == '\n' || (f & unicode::kNumber)) &&
        ((f & unicode::kLetter) || (flags(pos + 1) & unicode::kLetter))) {
      ++pos;
      while (inRange(pos) && (flags(pos) & unicode::kLetter))
        ++pos;
      words.push_back({start, pos});
      continue;
    }
    // \p{N}{1,maxDigits}
    if (f & unicode::kNumber) {
      size_t n = 0;
      while (n < maxDigits && inRange(pos) && (flags(pos) & unicode::kNumber))
        ++pos, ++n;
      words.push_back({start, pos});
      continue;
    }
    //  ?[^\s\p{L}\p{N}]+[\r\n]*
    size_t runStart = pos + (cp == ' ' ? 1 : 0);
    if (!inRange(runStart) || !(flags(runStart) & wordish)) {
      // A lone trailing space lands here too and ends up a one-space word,
      // which is what the \s+ rule would give it.
      pos = runStart;
      while (inRange(pos) && !(flags(pos) & wordish))
        ++pos;
      while (isCrLf(pos))
        ++pos;
      words.push_back({start, pos});
      continue;
    }
    pos = matchTrailingWhitespace(cps, pos, end);
    words.push_back({start, pos});
  }
}

// What the first DEFAULT regex takes: \p{P} and the ASCII symbols it lists.
// Of ASCII only '`' is left out. (llama.cpp matches \p{P} on a copy of the
// text where each non-ASCII codepoint stands for its one Unicode category, so
// \p{P} there is exactly the P* categories.)
bool isDefaultPunctuation(uint32_t cp) {
  switch (cp) {
  case '$':
  case '+':
  case '<':
  case '=':
  case '>':
  case '^':
  case '~':
  case '|':
    return true;
  default:
    return unicode::isPunctuation(cp);
  }
}

bool isAsciiDigit(uint32_t cp) { return cp >= '0' && cp <= '9'; }

// llama.cpp's DEFAULT regex sequence (see PreTokenizer::Default) over cps,
// or with `falcon` FALCON's: '`' is punctuation too and numbers go straight
// to the [0-9][0-9][0-9] step.
void scanDefault(const std::vector<uint32_t> &cps, bool falcon,
                 std::vector<Span> &words) {
  auto punctuation = [&](uint32_t cp) {
    return isDefaultPunctuation(cp) || (falcon && cp == '`');
  };
  // [\p{P}\$\+<=>\^~\|]+: runs of punctuation and the text between them,
  // which the GPT-2 regex then splits without seeing past its ends. A run
  // has no letters, numbers or spaces, so GPT-2 would keep it whole.
  std::vector<Span> gpt2Words;
  for (size_t i = 0; i < cps.size();) {
    size_t j = i;
    bool punct = punctuation(cps[i]);
    while (j < cps.size() && punctuation(cps[j]) == punct)
      ++j;
    if (punct)
      gpt2Words.push_back({i, j});
    else
      scanGpt2(cps, i, j, gpt2Words);
    i = j;
  }
  for (const Span &w : gpt2Words) {
    // \p{N}+: a GPT-2 word holds numbers only as " ?\p{N}+", so this splits
    // the space off.
    for (size_t i = w.first; i < w.second;) {
      size_t j = i;
      bool number = falcon || unicode::isNumber(cps[i]);
      while (j < w.second && (falcon || unicode::isNumber(cps[j]) == number))
        ++j;
      if (!number) {
        words.push_back({i, j});
        i = j;
        continue;
      }
      // [0-9][0-9][0-9]: ASCII digits in threes, leftmost first; anything
      // else in the run (other digits, a shorter tail) stays a piece between.
      size_t gap = i;
      for (size_t k = i; k + 3 <= j;) {
        if (isAsciiDigit(cps[k]) && isAsciiDigit(cps[k + 1]) &&
            isAsciiDigit(cps[k + 2])) {
          if (k > gap)
            words.push_back({gap, k});
          words.push_back({k, k + 3});
          k += 3;
          gap = k;
        } else {
          ++k;
        }
      }
      if (gap < j)
        words.push_back({gap, j});
      i = j;
    }
  }
}

// BLOOM's  ?[^(\s|.,!?…。，、।۔،)]+ over cps (llama.cpp runs it with
// std::wregex, non-ASCII whitespace standing in as \v): matches and the
// gaps between them are pieces.
void scanBloom(const std::vector<uint32_t> &cps, std::vector<Span> &words) {
  auto excluded = [](uint32_t cp) {
    switch (cp) {
    case '(':
    case '|':
    case '.':
    case ',':
    case '!':
    case '?':
    case ')':
    case 0x2026:
    case 0x3002:
    case 0xFF0C:
    case 0x3001:
    case 0x0964:
    case 0x06D4:
    case 0x060C:
      return true;
    default:
      return (unicode::codepointFlags(cp) & unicode::kWhitespace) != 0;
    }
  };
  size_t gap = 0, pos = 0;
  while (pos < cps.size()) {
    size_t run = pos + (cps[pos] == ' ' ? 1 : 0);
    if (run >= cps.size() || excluded(cps[run])) {
      ++pos;
      continue;
    }
    if (pos > gap)
      words.push_back({gap, pos});
    size_t end = run;
    while (end < cps.size() && !excluded(cps[end]))
      ++end;
    words.push_back({pos, end});
    pos = gap = end;
  }
  if (gap < cps.size())
    words.push_back({gap, cps.size()});
}

// GPT-4o's regex (and Tekken's: maxDigits 1, no contractions) over
// cps[begin, end). llama.cpp runs it with std::regex on a copy of the text
// where each non-ASCII codepoint stands for its category, so the regex's
// case tests, (?=\p{L})[^a-z] for upper and (?=\p{L})[^A-Z] for lower case,
// take every non-ASCII letter for both; its backtracking then ends a word
// after the last non-ASCII letter of a run of capitals ("ÉCOLE" is "É",
// "COLE"). Kiln follows that, not the tokenizer.json regex.
void scanCaseSplit(const std::vector<uint32_t> &cps, size_t begin, size_t end,
                   size_t maxDigits, bool contractions,
                   std::vector<Span> &words) {
  auto flags = [&](size_t k) -> uint8_t {
    return k < end ? unicode::codepointFlags(cps[k]) : 0;
  };
  auto isUpper = [&](size_t k) {
    return (flags(k) & unicode::kLetter) && !(cps[k] >= 'a' && cps[k] <= 'z');
  };
  auto isLower = [&](size_t k) {
    return (flags(k) & unicode::kLetter) && !(cps[k] >= 'A' && cps[k] <= 'Z');
  };
  const uint8_t wordish =
      unicode::kLetter | unicode::kNumber | unicode::kWhitespace;
  size_t pos = begin;
  while (pos < end) {
    size_t start = pos;
    uint32_t cp = cps[pos];
    uint8_t f = flags(pos);
    // [^\r\n\p{L}\p{N}]? before the letters.
    size_t letters = pos;
    if (cp != '\r' && cp != '\n' &&
        !(f & (unicode::kLetter | unicode::kNumber)))
      ++letters;
    if (flags(letters) & unicode::kLetter) {
      size_t upperEnd = letters;
      while (isUpper(upperEnd))
        ++upperEnd;
      size_t wordEnd = upperEnd;
      if (isLower(upperEnd)) {
        while (isLower(wordEnd)) // U*L+
          ++wordEnd;
      } else {
        // L+ backtracks to the last letter that is also lower case (a
        // non-ASCII one); with none, U+L* takes the capitals.
        for (size_t j = upperEnd; j > letters; --j) {
          if (isLower(j - 1)) {
            wordEnd = j;
            break;
          }
        }
      }
      if (contractions && wordEnd < end)
        wordEnd += matchContraction(cps, wordEnd, end, /*anyCase=*/true);
      words.push_back({start, wordEnd});
      pos = wordEnd;
      continue;
    }
    if (f & unicode::kNumber) { // \p{N}{1,maxDigits}
      for (size_t n = 0; n < maxDigits && (flags(pos) & unicode::kNumber); ++n)
        ++pos;
      words.push_back({start, pos});
      continue;
    }
    //  ?[^\s\p{L}\p{N}]+[\r\n/]*
    size_t runStart = pos + (cp == ' ' ? 1 : 0);
    if (runStart < end && !(flags(runStart) & wordish)) {
      pos = runStart;
      while (pos < end && !(flags(pos) & wordish))
        ++pos;
      while (pos < end &&
             (cps[pos] == '\r' || cps[pos] == '\n' || cps[pos] == '/'))
        ++pos;
      words.push_back({start, pos});
      continue;
    }
    pos = matchTrailingWhitespace(cps, pos, end);
    words.push_back({start, pos});
  }
}

// Splits each piece at the matches of one regex of a sequence (llama.cpp's
// std::regex steps): the matches and the gaps between them become pieces.
// matchAt(pos, end) is the length of the match at pos within a piece ending
// at end, 0 for none (no regex here matches the empty string).
template <typename MatchAt>
void splitPieces(std::vector<Span> &pieces, MatchAt matchAt) {
  std::vector<Span> out;
  for (const Span &piece : pieces) {
    size_t gap = piece.first, pos = piece.first;
    while (pos < piece.second) {
      size_t n = matchAt(pos, piece.second);
      if (!n) {
        ++pos;
        continue;
      }
      if (pos > gap)
        out.push_back({gap, pos});
      out.push_back({pos, pos + n});
      pos = gap = pos + n;
    }
    if (gap < piece.second)
      out.push_back({gap, piece.second});
  }
  pieces.swap(out);
}

// DeepSeek V3's regex sequence (PreTokenizer::DeepSeek3). Its second regex
// has no \p{...}, so llama.cpp matches its ranges on the codepoints
// themselves; the others see categories, as in scanCaseSplit.
void scanDeepSeek3(const std::vector<uint32_t> &cps, std::vector<Span> &words) {
  auto flags = [&](size_t k, size_t end) -> uint8_t {
    return k < end ? unicode::codepointFlags(cps[k]) : 0;
  };
  std::vector<Span> pieces{{0, cps.size()}};
  splitPieces(pieces, [&](size_t pos, size_t end) { // \p{N}{1,3}
    size_t n = 0;
    while (n < 3 && (flags(pos + n, end) & unicode::kNumber))
      ++n;
    return n;
  });
  splitPieces(pieces, [&](size_t pos, size_t end) { // [一-龥぀-ゟ゠-ヿ]+
    auto isKanaOrHan = [](uint32_t cp) {
      return (cp >= 0x4E00 && cp <= 0x9FA5) || (cp >= 0x3040 && cp <= 0x30FF);
    };
    size_t n = 0;
    while (pos + n < end && isKanaOrHan(cps[pos + n]))
      ++n;
    return n;
  });
  const uint8_t punctOrSymbol = unicode::kPunctuation | unicode::kSymbol;
  const uint8_t letterOrMark = unicode::kLetter | unicode::kMark;
  splitPieces(pieces, [&](size_t pos, size_t end) -> size_t {
    uint32_t cp = cps[pos];
    uint8_t f = flags(pos, end);
    // [!-/:-@[-`{-~][A-Za-z]+: one ASCII punctuation or symbol, ASCII letters.
    auto isAsciiLetter = [&](size_t k) {
      return k < end && cps[k] < 128 && (flags(k, end) & unicode::kLetter);
    };
    if (cp < 128 && (f & punctOrSymbol) && isAsciiLetter(pos + 1)) {
      size_t k = pos + 1;
      while (isAsciiLetter(k))
        ++k;
      return k - pos;
    }
    // [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+
    size_t run = pos;
    if (cp != '\r' && cp != '\n' &&
        !(f & (unicode::kLetter | punctOrSymbol)) &&
        (flags(pos + 1, end) & letterOrMark))
      run = pos + 1;
    if (flags(run, end) & letterOrMark) {
      while (flags(run, end) & letterOrMark)
        ++run;
      return run - pos;
    }
    //  ?[\p{P}\p{S}]+[\r\n]*
    size_t k = pos + (cp == ' ' ? 1 : 0);
    if (flags(k, end) & punctOrSymbol) {
      while (flags(k, end) & punctOrSymbol)
        ++k;
      while (k < end && (cps[k] == '\r' || cps[k] == '\n'))
        ++k;
      return k - pos;
    }
    if (!(f & unicode::kWhitespace))
      return 0;
    return matchTrailingWhitespace(cps, pos, end) - pos;
  });
  words.insert(words.end(), pieces.begin(), pieces.end());
}

// The letters of DeepSeek LLM's second regex, as ranges of codepoints
// (llama.cpp's llama-vocab.cpp, LLAMA_VOCAB_PRE_TYPE_DEEPSEEK_LLM).
constexpr std::pair<uint32_t, uint32_t> kDeepSeekLetters[] = {
    {0x0041, 0x005A}, {0x0061, 0x007A}, {0x00B5, 0x00B5}, {0x00C0, 0x00D6},
    {0x00D8, 0x00F6}, {0x00F8, 0x01BA}, {0x01BC, 0x01BF}, {0x01C4, 0x0293},
    {0x0295, 0x02AF}, {0x0370, 0x0373}, {0x0376, 0x0376}, {0x0377, 0x0377},
    {0x037B, 0x037D}, {0x037F, 0x037F}, {0x0386, 0x0386}, {0x0388, 0x038A},
    {0x038C, 0x038C}, {0x038E, 0x03A1}, {0x03A3, 0x03F5}, {0x03F7, 0x0481},
    {0x048A, 0x052F}, {0x0531, 0x0556}, {0x10A0, 0x10C5}, {0x13A0, 0x13F5},
    {0x13F8, 0x13FD}, {0x1C90, 0x1CBA}, {0x1CBD, 0x1CBF}, {0x1D00, 0x1D2B},
    {0x1D6B, 0x1D77}, {0x1D79, 0x1D9A}, {0x1E00, 0x1F15}, {0x1F18, 0x1F1D},
    {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59},
    {0x1F5B, 0x1F5B}, {0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4},
    {0x1FB6, 0x1FBC}, {0x1FBE, 0x1FBE}, {0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC},
    {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC}, {0x1FF2, 0x1FF4},
    {0x1FF6, 0x1FFC}, {0x2102, 0x2102}, {0x2107, 0x2107}, {0x210A, 0x2113},
    {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124}, {0x2126, 0x2126},
    {0x2128, 0x2128}, {0x212A, 0x212D}, {0x212F, 0x2134}, {0x2139, 0x2139},
    {0x213C, 0x213F}, {0x2145, 0x2149}, {0x214E, 0x214E}, {0x2183, 0x2183},
    {0x2184, 0x2184}, {0x2C00, 0x2C7B}, {0x2C7E, 0x2CE4}, {0x2CEB, 0x2CEE},
    {0x2CF2, 0x2CF2}, {0x2CF3, 0x2CF3}, {0xA640, 0xA66D}, {0xA680, 0xA69B},
    {0xA722, 0xA76F}, {0xA771, 0xA787}, {0xA78B, 0xA78E}, {0xAB70, 0xABBF},
    {0xFB00, 0xFB06}, {0xFB13, 0xFB17}, {0xFF21, 0xFF3A}, {0xFF41, 0xFF5A},
    {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB},
    {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF},
    {0x1E900, 0x1E943},
};

// DeepSeek LLM's and DeepSeek Coder's regex sequences (PreTokenizer::
// DeepSeekLlm, DeepSeekCoder). llama.cpp runs the regexes without \p{...} on
// the codepoints themselves, every non-ASCII whitespace replaced by \v, so
// U+3000 is in none of their ranges; the others see categories.
void scanDeepSeek(const std::vector<uint32_t> &cps, bool coder,
                  std::vector<Span> &words) {
  auto isSpace = [](uint32_t cp) { return unicode::isWhitespace(cp); };
  // The codepoint a std::wregex step sees.
  auto wide = [](uint32_t cp) -> uint32_t {
    return cp > 0x7F && unicode::isWhitespace(cp) ? 0x0B : cp;
  };
  std::vector<Span> pieces{{0, cps.size()}};
  splitPieces(pieces, [&](size_t pos, size_t) -> size_t { // [\r\n]
    return cps[pos] == '\r' || cps[pos] == '\n';
  });
  // \s? then a run of `inClass`.
  auto spaceThenRun = [&](auto inClass) {
    return [&, inClass](size_t pos, size_t end) -> size_t {
      size_t run = pos;
      if (isSpace(cps[pos]) && pos + 1 < end && inClass(cps[pos + 1]))
        run = pos + 1;
      size_t k = run;
      while (k < end && inClass(cps[k]))
        ++k;
      return k > run ? k - pos : 0;
    };
  };
  if (coder) {
    splitPieces(pieces, spaceThenRun(unicode::isLetter));
    splitPieces(pieces, spaceThenRun(unicode::isPunctuation));
  } else {
    splitPieces(pieces, spaceThenRun([&](uint32_t cp) {
                  cp = wide(cp);
                  for (const auto &[first, last] : kDeepSeekLetters)
                    if (cp >= first && cp <= last)
                      return true;
                  return false;
                }));
    splitPieces(pieces, spaceThenRun([&](uint32_t cp) {
                  cp = wide(cp); // [!-/:-~！-／：-～‘-‟　-。]
                  return (cp >= '!' && cp <= '/') || (cp >= ':' && cp <= '~') ||
                         (cp >= 0xFF01 && cp <= 0xFF0F) ||
                         (cp >= 0xFF1A && cp <= 0xFF5E) ||
                         (cp >= 0x2018 && cp <= 0x201F) ||
                         (cp >= 0x3000 && cp <= 0x3002);
                }));
    splitPieces(pieces, [&](size_t pos, size_t end) -> size_t { // \s+$
      size_t k = pos;
      while (k < end && isSpace(cps[k]))
        ++k;
      return k == end ? k - pos : 0;
    });
  }
  splitPieces(pieces, [&](size_t pos, size_t end) { // [一-龥ࠀ-一가-퟿]+
    auto inRanges = [&](uint32_t cp) {
      cp = wide(cp);
      return (cp >= 0x0800 && cp <= 0x9FA5) || (cp >= 0xAC00 && cp <= 0xD7FF);
    };
    size_t k = pos;
    while (k < end && inRanges(cps[k]))
      ++k;
    return k - pos;
  });
  splitPieces(pieces, [&](size_t pos, size_t end) { // \p{N} or \p{N}+
    size_t k = pos;
    while (k < end && unicode::isNumber(cps[k]) && (!coder || k == pos))
      ++k;
    return k - pos;
  });
  words.insert(words.end(), pieces.begin(), pieces.end());
}

struct BpeSymbol {
  int prev;
  int next;
  size_t offset;
  size_t length;
};

struct BpeBigram {
  int left;
  int right;
  int32_t rank;
  size_t length;
  // std::priority_queue pops the greatest: lowest rank first, leftmost on ties.
  bool operator<(const BpeBigram &o) const {
    return rank > o.rank || (rank == o.rank && left > o.left);
  }
};

struct SpmBigram {
  int left;
  int right;
  float score;
  size_t length;
  // Highest score first, leftmost on ties.
  bool operator<(const SpmBigram &o) const {
    return score < o.score || (score == o.score && left > o.left);
  }
};

} // namespace

struct Tokenizer::Impl {
  ModelKind kind = ModelKind::BytePairGpt2;
  PreInfo pre{PreTokenizer::Gpt2, false, false, false};
  std::vector<std::string> texts;
  std::vector<uint8_t> types;
  std::vector<float> scores;
  std::unordered_map<std::string, int32_t> textToId;
  // Key: the merge as written in the vocabulary, "left right". Byte-level
  // symbols never contain a space, so the key is unambiguous.
  std::unordered_map<std::string, int32_t> mergeRanks;
  // Control/unknown/user-defined tokens, longest text first.
  std::vector<int32_t> specialTokens;
  std::vector<std::string> pieces;
  std::vector<bool> endOfGeneration;
  int32_t bosId = -1, eosId = -1, eotId = -1, unkId = -1, padId = -1;
  bool addBos = false, addEos = false, addSpacePrefix = false;
  std::string chatTemplate;
  WordPieceOptions wordPiece; // ModelKind::WordPiece's normalizer and model

  int32_t lookup(const std::string &text) const {
    auto it = textToId.find(text);
    return it == textToId.end() ? -1 : it->second;
  }

  std::vector<Fragment> partition(std::string_view text,
                                  bool parseSpecial) const;
  void encodeBpe(std::string_view text, std::vector<int32_t> &out) const;
  void bpeWord(const std::string &word, std::vector<int32_t> &out) const;
  void encodeSpm(const std::string &text, std::vector<int32_t> &out) const;
  int32_t byteToken(uint8_t byte) const;
  std::string computePiece(int32_t id) const;
};

// Cuts special tokens out of the text, longest token first: each token in
// turn splits every raw fragment at all of its occurrences. This order (not
// leftmost-first) is llama.cpp's, and it decides overlapping matches.
std::vector<Fragment> Tokenizer::Impl::partition(std::string_view text,
                                                 bool parseSpecial) const {
  std::vector<Fragment> frags;
  if (text.empty())
    return frags;
  frags.push_back({-1, 0, text.size()});
  std::vector<Fragment> next;
  for (int32_t id : specialTokens) {
    uint8_t type = types[id];
    if (!parseSpecial && (type == kControl || type == kUnknown))
      continue;
    const std::string &needle = texts[id];
    bool found = false;
    for (const Fragment &f : frags) {
      if (f.token < 0 &&
          text.substr(f.offset, f.length).find(needle) != std::string_view::npos) {
        found = true;
        break;
      }
    }
    if (!found)
      continue;
    next.clear();
    for (const Fragment &f : frags) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      size_t pos = f.offset, end = f.offset + f.length;
      while (pos < end) {
        size_t hit = text.substr(0, end).find(needle, pos);
        if (hit == std::string_view::npos)
          break;
        if (hit > pos)
          next.push_back({-1, pos, hit - pos});
        next.push_back({id, hit, needle.size()});
        pos = hit + needle.size();
      }
      if (pos < end)
        next.push_back({-1, pos, end - pos});
    }
    frags.swap(next);
  }
  return frags;
}

void Tokenizer::Impl::encodeBpe(std::string_view text,
                                std::vector<int32_t> &out) const {
  std::vector<uint32_t> cps = unicode::decodeUtf8Lossy(text);
  std::vector<Span> words;
  words.reserve(cps.size() / 3 + 1);
  switch (pre.kind) {
  case PreTokenizer::Gpt2:
    scanGpt2(cps, 0, cps.size(), words);
    break;
  case PreTokenizer::DigitsThenGpt2: {
    // \p{N} first: every number codepoint is a word of its own, and the
    // GPT-2 regex then runs on each stretch between them separately.
    size_t runStart = 0;
    for (size_t i = 0; i < cps.size(); ++i) {
      if (!unicode::isNumber(cps[i]))
        continue;
      if (i > runStart)
        scanGpt2(cps, runStart, i, words);
      words.push_back({i, i + 1});
      runStart = i + 1;
    }
    if (runStart < cps.size())
      scanGpt2(cps, runStart, cps.size(), words);
    break;
  }
  case PreTokenizer::Llama3:
    scanLlama3(cps, 0, cps.size(), 3, words);
    break;
  case PreTokenizer::Qwen2:
    scanLlama3(cps, 0, cps.size(), 1, words);
    break;
  case PreTokenizer::Default:
  case PreTokenizer::Falcon:
    scanDefault(cps, pre.kind == PreTokenizer::Falcon, words);
    break;
  case PreTokenizer::Bloom:
    scanBloom(cps, words);
    break;
  case PreTokenizer::Gpt4o:
    scanCaseSplit(cps, 0, cps.size(), 3, /*contractions=*/true, words);
    break;
  case PreTokenizer::Tekken:
    scanCaseSplit(cps, 0, cps.size(), 1, /*contractions=*/false, words);
    break;
  case PreTokenizer::DeepSeek3:
    scanDeepSeek3(cps, words);
    break;
  case PreTokenizer::DeepSeekLlm:
  case PreTokenizer::DeepSeekCoder:
    scanDeepSeek(cps, pre.kind == PreTokenizer::DeepSeekCoder, words);
    break;
  case PreTokenizer::Viking: {
    std::vector<Span> pieces;
    scanBloom(cps, pieces);
    // \p{N}: each number codepoint a piece, the stretches between too.
    for (const Span &piece : pieces) {
      size_t gap = piece.first;
      for (size_t i = piece.first; i < piece.second; ++i) {
        if (!unicode::isNumber(cps[i]))
          continue;
        if (i > gap)
          words.push_back({gap, i});
        words.push_back({i, i + 1});
        gap = i + 1;
      }
      if (gap < piece.second)
        words.push_back({gap, piece.second});
    }
    break;
  }
  }

  std::string utf8, word;
  for (const Span &span : words) {
    utf8.clear();
    for (size_t i = span.first; i < span.second; ++i)
      unicode::appendUtf8(utf8, cps[i]);
    word.clear();
    for (char c : utf8)
      unicode::appendUtf8(word, unicode::byteToCodepoint(uint8_t(c)));
    bpeWord(word, out);
  }
}

// Merge-rank BPE on one byte-level-encoded word: a doubly linked list of
// symbols and a heap of candidate pairs, O(n log n). A popped pair is stale
// when either side has since merged with something else, which shows as a
// changed length (symbols only ever grow to the right).
void Tokenizer::Impl::bpeWord(const std::string &word,
                              std::vector<int32_t> &out) const {
  if (word.empty())
    return;
  if (pre.ignoreMerges) {
    int32_t id = lookup(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  std::vector<BpeSymbol> syms;
  for (size_t off = 0; off < word.size();) {
    size_t len = std::min(unicode::utf8SequenceLength(uint8_t(word[off])),
                          word.size() - off);
    int index = int(syms.size());
    syms.push_back({index - 1, off + len == word.size() ? -1 : index + 1, off,
                    len});
    off += len;
  }
  std::priority_queue<BpeBigram> queue;
  std::string key;
  auto addPair = [&](int left, int right) {
    if (left < 0 || right < 0)
      return;
    const BpeSymbol &l = syms[left], &r = syms[right];
    key.assign(word, l.offset, l.length);
    key.push_back(' ');
    key.append(word, r.offset, r.length);
    auto it = mergeRanks.find(key);
    if (it == mergeRanks.end())
      return;
    queue.push({left, right, it->second, l.length + r.length});
  };
  for (int i = 1; i < int(syms.size()); ++i)
    addPair(i - 1, i);
  while (!queue.empty()) {
    BpeBigram top = queue.top();
    queue.pop();
    BpeSymbol &l = syms[top.left], &r = syms[top.right];
    if (l.length == 0 || r.length == 0 || l.length + r.length != top.length)
      continue;
    l.length += r.length;
    r.length = 0;
    l.next = r.next;
    if (r.next >= 0)
      syms[r.next].prev = top.left;
    addPair(l.prev, top.left);
    addPair(top.left, l.next);
  }
  std::string text;
  for (int i = 0; i >= 0; i = syms[i].next) {
    text.assign(word, syms[i].offset, syms[i].length);
    int32_t id = lookup(text);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    // Not a token: llama.cpp tries each raw byte of the encoded text as a
    // token and drops those that are not; a sane vocabulary never gets here.
    for (char c : text) {
      int32_t b = lookup(std::string(1, c));
      if (b >= 0)
        out.push_back(b);
    }
  }
}

int32_t Tokenizer::Impl::byteToken(uint8_t byte) const {
  static const char hex[] = "0123456789ABCDEF";
  const char name[7] = {'<', '0', 'x', hex[byte >> 4], hex[byte & 15], '>', 0};
  int32_t id = lookup(name);
  if (id >= 0)
    return id;
  id = lookup(std::string(1, char(byte)));
  return id >= 0 ? id : unkId;
}

// SentencePiece-style merging: repeatedly merge the adjacent pair whose
// concatenation is the highest-scoring token; what is left that is not a
// token falls back to byte tokens.
void Tokenizer::Impl::encodeSpm(const std::string &text,
                                std::vector<int32_t> &out) const {
  std::vector<BpeSymbol> syms;
  for (size_t off = 0; off < text.size();) {
    size_t len = std::min(unicode::utf8SequenceLength(uint8_t(text[off])),
                          text.size() - off);
    int index = int(syms.size());
    syms.push_back({index - 1, off + len == text.size() ? -1 : index + 1, off,
                    len});
    off += len;
  }
  if (syms.empty())
    return;
  std::priority_queue<SpmBigram> queue;
  std::string piece;
  auto addPair = [&](int left, int right) {
    if (left < 0 || right < 0)
      return;
    piece.assign(text, syms[left].offset, syms[left].length + syms[right].length);
    int32_t id = lookup(piece);
    if (id < 0)
      return;
    queue.push({left, right, scores[id], piece.size()});
  };
  for (int i = 1; i < int(syms.size()); ++i)
    addPair(i - 1, i);
  while (!queue.empty()) {
    SpmBigram top = queue.top();
    queue.pop();
    BpeSymbol &l = syms[top.left], &r = syms[top.right];
    if (l.length == 0 || r.length == 0 || l.length + r.length != top.length)
      continue;
    l.length += r.length;
    r.length = 0;
    l.next = r.next;
    if (r.next >= 0)
      syms[r.next].prev = top.left;
    addPair(l.prev, top.left);
    addPair(top.left, l.next);
  }
  // Every merged symbol is a token by construction, so only single
  // characters can miss and need the byte fallback.
  for (int i = 0; i >= 0; i = syms[i].next) {
    piece.assign(text, syms[i].offset, syms[i].length);
    int32_t id = lookup(piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    for (char c : piece) {
      int32_t b = byteToken(uint8_t(c));
      if (b >= 0)
        out.push_back(b);
    }
  }
}

std::string Tokenizer::Impl::computePiece(int32_t id) const {
  const std::string &text = texts[id];
  switch (types[id]) {
  case kControl:
  case kUnknown:
  case kUserDefined:
    return text;
  case kNormal:
    break;
  case kByte:
    if (kind == ModelKind::SentencePiece && text.size() == 6 &&
        text.compare(0, 3, "<0x") == 0 && text[5] == '>') {
      return std::string(1, char(std::stoi(text.substr(3, 2), nullptr, 16)));
    }
    return "";
  default:
    return "";
  }
  if (kind == ModelKind::WordPiece)
    return text;
  std::string out;
  if (kind == ModelKind::SentencePiece) {
    for (size_t i = 0; i < text.size();) {
      if (text.compare(i, 3, kSpaceMarker) == 0) {
        out.push_back(' ');
        i += 3;
      } else {
        out.push_back(text[i++]);
      }
    }
    return out;
  }
  for (uint32_t cp : unicode::decodeUtf8Lossy(text)) {
    int b = unicode::codepointToByte(cp);
    if (b >= 0)
      out.push_back(char(b));
    else
      unicode::appendUtf8(out, cp); // not byte-level; keep it as written
  }
  return out;
}

//===----------------------------------------------------------------------===//
// Loading
//===----------------------------------------------------------------------===//

namespace {

// Reads an optional token id: absent or null leaves `out` alone.
bool readTokenId(const json &j, const char *key, size_t vocabSize,
                 int32_t &out, std::string &error) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null())
    return true;
  if (!it->is_number_integer()) {
    error = std::string("vocabulary: '") + key + "' must be an integer or null";
    return false;
  }
  int64_t v = it->get<int64_t>();
  if (v < 0 || uint64_t(v) >= vocabSize) {
    error = std::string("vocabulary: ") + key + " = " + std::to_string(v) +
            " is not an id of this vocabulary of " + std::to_string(vocabSize) +
            " tokens";
    return false;
  }
  out = int32_t(v);
  return true;
}

bool readFlag(const json &j, const char *key, bool &out, std::string &error) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null())
    return true;
  if (!it->is_boolean()) {
    error = std::string("vocabulary: '") + key + "' must be a boolean or null";
    return false;
  }
  out = it->get<bool>();
  return true;
}

bool loadVocabulary(const json &j, Tokenizer::Impl &v, std::string &error) {
  if (!j.is_object()) {
    error = "vocabulary: expected a JSON object";
    return false;
  }
  auto model = j.find("model");
  if (model == j.end() || !model->is_string()) {
    error = "vocabulary: missing 'model' (\"gpt2\" or \"llama\")";
    return false;
  }
  const std::string modelName = model->get<std::string>();
  if (modelName == "gpt2") {
    v.kind = ModelKind::BytePairGpt2;
  } else if (modelName == "llama") {
    v.kind = ModelKind::SentencePiece;
  } else if (modelName == "bert") {
    v.kind = ModelKind::WordPiece;
    WordPieceOptions &o = v.wordPiece;
    if (!readFlag(j, "lowercase", o.lowercase, error) ||
        !readFlag(j, "strip_accents", o.stripAccents, error) ||
        !readFlag(j, "clean_text", o.cleanText, error) ||
        !readFlag(j, "handle_chinese_chars", o.chineseChars, error))
      return false;
    if (auto it = j.find("subword_prefix"); it != j.end() && it->is_string())
      o.subwordPrefix = it->get<std::string>();
    if (auto it = j.find("max_input_chars_per_word");
        it != j.end() && it->is_number_unsigned())
      o.maxCharsPerWord = it->get<size_t>();
  } else {
    error = "vocabulary: unknown tokenizer model '" + modelName +
            "' (Kiln knows \"gpt2\", \"llama\" and \"bert\")";
    return false;
  }

  std::string preName;
  if (auto it = j.find("pre"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) {
      error = "vocabulary: 'pre' must be a string";
      return false;
    }
    preName = it->get<std::string>();
  }
  if (v.kind == ModelKind::BytePairGpt2) {
    if (!lookupPre(preName, v.pre)) {
      error = "vocabulary: unsupported pre-tokenizer '" + preName +
              "' for a gpt2 vocabulary (Kiln knows default, gpt2, smollm, "
              "starcoder, llama-bpe/llama3, qwen2, falcon, bloom, viking and "
              "their aliases)";
      return false;
    }
  }

  auto tokens = j.find("tokens");
  if (tokens == j.end() || !tokens->is_array() || tokens->empty()) {
    error = "vocabulary: 'tokens' must be a non-empty array of strings";
    return false;
  }
  const size_t n = tokens->size();
  v.texts.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const json &t = (*tokens)[i];
    if (!t.is_string()) {
      error = "vocabulary: token " + std::to_string(i) + " is not a string";
      return false;
    }
    std::string text = t.get<std::string>();
    if (!unicode::isValidUtf8(text)) {
      error = "vocabulary: token " + std::to_string(i) + " is not valid UTF-8";
      return false;
    }
    // llama.cpp renames empty tokens so that they cannot match anything.
    if (text.empty())
      text = "[EMPTY_" + std::to_string(i) + "]";
    v.texts.push_back(std::move(text));
  }

  v.types.assign(n, kNormal);
  if (auto it = j.find("token_types"); it != j.end() && !it->is_null()) {
    if (!it->is_array() || it->size() != n) {
      error = "vocabulary: 'token_types' has " +
              std::to_string(it->is_array() ? it->size() : 0) +
              " entries but there are " + std::to_string(n) + " tokens";
      return false;
    }
    for (size_t i = 0; i < n; ++i) {
      const json &t = (*it)[i];
      if (!t.is_number_integer() || t.get<int64_t>() < 0 ||
          t.get<int64_t>() > kByte) {
        error = "vocabulary: token_types[" + std::to_string(i) +
                "] is not a GGUF token type (0..6)";
        return false;
      }
      v.types[i] = uint8_t(t.get<int64_t>());
    }
  }

  v.scores.assign(n, 0.0f);
  if (auto it = j.find("scores"); it != j.end() && !it->is_null()) {
    if (!it->is_array() || it->size() != n) {
      error = "vocabulary: 'scores' has " +
              std::to_string(it->is_array() ? it->size() : 0) +
              " entries but there are " + std::to_string(n) + " tokens";
      return false;
    }
    for (size_t i = 0; i < n; ++i) {
      const json &s = (*it)[i];
      if (!s.is_number()) {
        error = "vocabulary: scores[" + std::to_string(i) + "] is not a number";
        return false;
      }
      v.scores[i] = s.get<float>();
    }
  }

  if (v.kind == ModelKind::BytePairGpt2) {
    auto merges = j.find("merges");
    if (merges == j.end() || !merges->is_array()) {
      error = "vocabulary: a gpt2 vocabulary needs a 'merges' array";
      return false;
    }
    v.mergeRanks.reserve(merges->size());
    for (size_t i = 0; i < merges->size(); ++i) {
      const json &m = (*merges)[i];
      std::string text = m.is_string() ? m.get<std::string>() : std::string();
      // Split at the first space after the first byte, like llama.cpp, so a
      // merge whose left side is itself a space still parses.
      size_t space = text.size() > 1 ? text.find(' ', 1) : std::string::npos;
      if (space == std::string::npos || space + 1 >= text.size()) {
        error = "vocabulary: merges[" + std::to_string(i) +
                "] is not of the form \"left right\"";
        return false;
      }
      v.mergeRanks.emplace(std::move(text), int32_t(i));
    }
  }

  if (!readTokenId(j, "bos_id", n, v.bosId, error) ||
      !readTokenId(j, "eos_id", n, v.eosId, error) ||
      !readTokenId(j, "eot_id", n, v.eotId, error) ||
      !readTokenId(j, "unk_id", n, v.unkId, error) ||
      !readTokenId(j, "pad_id", n, v.padId, error))
    return false;
  if (v.kind == ModelKind::WordPiece && v.unkId < 0) {
    error = "vocabulary: a bert (WordPiece) vocabulary needs 'unk_id'";
    return false;
  }

  // llama.cpp's defaults where the GGUF has no key.
  bool spm = v.kind == ModelKind::SentencePiece;
  v.addBos = spm || v.pre.addBosDefault;
  v.addEos = false;
  v.addSpacePrefix = spm;
  if (!readFlag(j, "add_bos", v.addBos, error) ||
      !readFlag(j, "add_eos", v.addEos, error) ||
      !readFlag(j, "add_space_prefix", v.addSpacePrefix, error))
    return false;
  if (v.addBos && v.bosId < 0) {
    error = "vocabulary: add_bos is set but there is no bos_id";
    return false;
  }
  if (v.addEos && v.eosId < 0) {
    error = "vocabulary: add_eos is set but there is no eos_id";
    return false;
  }
  if (spm)
    v.pre.cleanSpaces = false;

  if (auto it = j.find("chat_template"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) {
      error = "vocabulary: 'chat_template' must be a string";
      return false;
    }
    v.chatTemplate = it->get<std::string>();
  }

  // Later duplicates win, as in llama.cpp.
  v.textToId.reserve(n);
  for (size_t i = 0; i < n; ++i)
    v.textToId[v.texts[i]] = int32_t(i);

  // End of generation: what llama.cpp stops on. It also forces these tokens
  // to control type (some GGUFs mark "<|im_end|>" normal), which changes how
  // they are matched and rendered, so we do the same.
  v.endOfGeneration.assign(n, false);
  for (size_t i = 0; i < n; ++i) {
    const std::string &t = v.texts[i];
    if (isEogText(t)) {
      v.endOfGeneration[i] = true;
      v.types[i] = kControl;
      if (v.eotId < 0)
        v.eotId = int32_t(i);
    } else if (isFimEogText(t)) {
      v.endOfGeneration[i] = true;
      v.types[i] = kControl;
    } else if (isFimControlText(t)) {
      v.types[i] = kControl;
    } else if (t == "<|channel|>" || t == "<|message|>" || t == "<|start|>" ||
               t == "<|constrain|>") {
      // gpt-oss: llama.cpp always renders these, as user-defined tokens.
      v.types[i] = kUserDefined;
    }
  }
  for (int32_t id : {v.eosId, v.eotId})
    if (id >= 0)
      v.endOfGeneration[id] = true;

  for (size_t i = 0; i < n; ++i) {
    uint8_t t = v.types[i];
    if (t == kControl || t == kUserDefined || t == kUnknown)
      v.specialTokens.push_back(int32_t(i));
  }
  std::stable_sort(v.specialTokens.begin(), v.specialTokens.end(),
                   [&](int32_t a, int32_t b) {
                     return v.texts[a].size() > v.texts[b].size();
                   });

  v.pieces.resize(n);
  for (size_t i = 0; i < n; ++i)
    v.pieces[i] = v.computePiece(int32_t(i));
  return true;
}

} // namespace

std::unique_ptr<Tokenizer> Tokenizer::fromJSON(std::string_view text,
                                               std::string &error) {
  auto impl = std::make_unique<Impl>();
  try {
    json j = json::parse(text.begin(), text.end());
    if (!loadVocabulary(j, *impl, error))
      return nullptr;
  } catch (const json::exception &e) {
    error = std::string("vocabulary is not valid JSON: ") + e.what();
    return nullptr;
  } catch (const std::exception &e) {
    error = std::string("vocabulary: ") + e.what();
    return nullptr;
  }
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(impl)));
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

//===----------------------------------------------------------------------===//
// Encoding and decoding
//===----------------------------------------------------------------------===//

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool addSpecial,
                                       bool parseSpecial) const {
  const Impl &v = *impl;
  std::vector<int32_t> out;
  std::vector<Fragment> frags = v.partition(text, parseSpecial);
  if (addSpecial && v.addBos)
    out.push_back(v.bosId);
  if (v.kind == ModelKind::BytePairGpt2) {
    for (const Fragment &f : frags) {
      if (f.token >= 0)
        out.push_back(f.token);
      else
        v.encodeBpe(text.substr(f.offset, f.length), out);
    }
  } else if (v.kind == ModelKind::WordPiece) {
    auto lookup = [&](const std::string &piece) { return v.lookup(piece); };
    for (const Fragment &f : frags) {
      if (f.token >= 0)
        out.push_back(f.token);
      else
        encodeWordPiece(text.substr(f.offset, f.length), v.wordPiece, lookup,
                        v.unkId, out);
    }
  } else {
    // SentencePiece prefixes a space to the text, and llama.cpp does so again
    // after every special token.
    bool afterSpecial = true;
    std::string piece;
    for (const Fragment &f : frags) {
      if (f.token >= 0) {
        out.push_back(f.token);
        afterSpecial = true;
        continue;
      }
      piece.clear();
      if (v.addSpacePrefix && afterSpecial)
        piece.push_back(' ');
      piece.append(text.substr(f.offset, f.length));
      std::string escaped;
      escaped.reserve(piece.size() + piece.size() / 2);
      for (char c : piece) {
        if (c == ' ')
          escaped += kSpaceMarker;
        else
          escaped.push_back(c);
      }
      v.encodeSpm(escaped, out);
      afterSpecial = false;
    }
  }
  if (addSpecial && v.addEos)
    out.push_back(v.eosId);
  return out;
}

std::string Tokenizer::tokenToPiece(int32_t id) const {
  if (id < 0 || size_t(id) >= impl->pieces.size())
    return "";
  return impl->pieces[id];
}

namespace {

// llama.cpp's clean_up_tokenization_spaces, three passes over the text.
std::string cleanSpaces(std::string s) {
  auto isPunct = [](char c) { return c == '?' || c == '!' || c == '.' || c == ','; };
  // " ?", " !", " .", " ,": drop the space.
  std::string a;
  a.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && s[i - 1] == ' ' && isPunct(s[i]) && !a.empty())
      a.pop_back();
    a.push_back(s[i]);
  }
  // " ' ": drop both spaces around a lone apostrophe.
  std::string b;
  b.reserve(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    if (i > 0 && a[i] == '\'' && i + 1 < a.size() && a[i - 1] == ' ' &&
        a[i + 1] == ' ') {
      if (!b.empty())
        b.pop_back();
      b.push_back('\'');
      // llama.cpp blanks the skipped space in place, which the next step's
      // look-behind then sees.
      a[i + 1] = '\0';
      ++i;
      continue;
    }
    b.push_back(a[i]);
  }
  // " 's", " 'm", " 're", " 've": drop the space.
  std::string c;
  c.reserve(b.size());
  for (size_t i = 0; i < b.size(); ++i) {
    if (i > 0 && b[i - 1] == ' ' && b[i] == '\'' && i + 1 < b.size()) {
      char x1 = b[i + 1];
      bool drop = x1 == 's' || x1 == 'm';
      if (!drop && x1 != 't' && x1 != 'd' && i + 2 < b.size()) {
        char x2 = b[i + 2];
        drop = (x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e');
      }
      if (drop && !c.empty())
        c.pop_back();
    }
    c.push_back(b[i]);
  }
  return c;
}

} // namespace

std::string Tokenizer::decode(const std::vector<int32_t> &ids) const {
  const Impl &v = *impl;
  size_t begin = 0, end = ids.size();
  if (v.addBos && end > begin && ids[begin] == v.bosId)
    ++begin;
  if (v.addEos && end > begin && ids[end - 1] == v.eosId)
    --end;
  std::string out;
  for (size_t i = begin; i < end; ++i) {
    std::string_view piece;
    if (ids[i] >= 0 && size_t(ids[i]) < v.pieces.size())
      piece = v.pieces[ids[i]];
    // Undo the space SentencePiece prefixed to the text. (llama.cpp keeps it
    // when it removed a BOS first; we drop it so decode inverts encode.)
    if (i == begin && v.addSpacePrefix && !piece.empty() && piece[0] == ' ')
      piece.remove_prefix(1);
    out.append(piece);
  }
  if (v.pre.cleanSpaces && !out.empty())
    out = cleanSpaces(std::move(out));
  return out;
}

//===----------------------------------------------------------------------===//
// Chat templates
//===----------------------------------------------------------------------===//

namespace {

std::string trimmed(std::string_view s) {
  auto isSpace = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
           c == '\f';
  };
  while (!s.empty() && isSpace(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && isSpace(s.back()))
    s.remove_suffix(1);
  return std::string(s);
}

// A ChatML template that adds a system turn when the conversation has none
// writes it as one string literal: '<|im_start|>system\n...<|im_end|>'. Finds
// the first such literal and returns its text; a system turn built from an
// expression (quotes or braces inside) is not a default prompt.
bool findChatMLDefaultSystem(const std::string &tmpl, std::string &out) {
  const std::string open = "<|im_start|>system";
  const std::string close = "<|im_end|>";
  for (size_t at = tmpl.find(open); at != std::string::npos;
       at = tmpl.find(open, at + 1)) {
    size_t p = at + open.size();
    if (tmpl.compare(p, 1, "\n") == 0)
      p += 1;
    else if (tmpl.compare(p, 2, "\\n") == 0)
      p += 2;
    else
      continue;
    size_t stop = tmpl.find(close, p);
    if (stop == std::string::npos)
      return false;
    std::string_view body(tmpl.data() + p, stop - p);
    if (body.empty() || body.find_first_of("'\"{}") != std::string_view::npos)
      continue;
    out.clear();
    for (size_t i = 0; i < body.size(); ++i) {
      if (body[i] == '\\' && i + 1 < body.size()) {
        char e = body[++i];
        out.push_back(e == 'n' ? '\n' : e == 't' ? '\t' : e);
      } else {
        out.push_back(body[i]);
      }
    }
    return true;
  }
  return false;
}

} // namespace

bool Tokenizer::applyChatTemplate(std::string_view userMessage,
                                  std::string &out, std::string &error) const {
  const std::string &tmpl = impl->chatTemplate;
  out.clear();
  if (tmpl.empty()) {
    error = "the model has no chat template";
    return false;
  }
  if (tmpl.find("<|im_start|>") != std::string::npos) {
    std::string system;
    if (findChatMLDefaultSystem(tmpl, system))
      out += "<|im_start|>system\n" + system + "<|im_end|>\n";
    out += "<|im_start|>user\n";
    out.append(userMessage);
    out += "<|im_end|>\n<|im_start|>assistant\n";
    return true;
  }
  if (tmpl.find("<|start_header_id|>") != std::string::npos) {
    out += "<|start_header_id|>user<|end_header_id|>\n\n";
    out += trimmed(userMessage);
    out += "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
    return true;
  }
  if (tmpl.find("<start_of_turn>") != std::string::npos) {
    out += "<start_of_turn>user\n";
    out += trimmed(userMessage);
    out += "<end_of_turn>\n<start_of_turn>model\n";
    return true;
  }
  auto contains = [&](const char *s) {
    return tmpl.find(s) != std::string::npos;
  };
  // Mistral's and Llama 2's [INST] families, told apart as llama.cpp's
  // llm_chat_detect_template does, for one user turn.
  if (contains("[INST]")) {
    const char *open = "[INST] ", *close = " [/INST]";
    bool strip = false;
    if (contains("[SYSTEM_PROMPT]")) { // Mistral v7
      close = "[/INST]";
    } else if (contains("' [INST] ' + system_message") ||
               contains("[AVAILABLE_TOOLS]")) {
      if (contains(" [INST]")) { // Mistral v1
        open = " [INST] ";
      } else if (contains("\"[INST]\"")) { // Mistral v3 (Tekken)
        open = "[INST]";
        close = "[/INST]";
      } else { // Mistral v3
        close = "[/INST]";
      }
    } else { // Llama 2
      strip = contains("content.strip()");
    }
    out += open;
    if (strip)
      out += trimmed(userMessage);
    else
      out.append(userMessage);
    out += close;
    return true;
  }
  if (contains("<|assistant|>") && contains("<|end|>")) { // Phi-3
    out += "<|user|>\n";
    out.append(userMessage);
    out += "<|end|>\n<|assistant|>\n";
    return true;
  }
  error = "unrecognised chat template (Kiln knows ChatML, Llama 2 and 3, "
          "Mistral, Phi-3 and Gemma)";
  return false;
}

int32_t Tokenizer::bos() const { return impl->bosId; }
int32_t Tokenizer::eos() const { return impl->eosId; }
bool Tokenizer::isEndOfGeneration(int32_t id) const {
  return id >= 0 && size_t(id) < impl->endOfGeneration.size() &&
         impl->endOfGeneration[id];
}
size_t Tokenizer::size() const { return impl->texts.size(); }
bool Tokenizer::addBos() const { return impl->addBos; }

} // namespace kiln
