//===- Tokenizer.h - the runtime's text <-> token ids ---------------------===//
//
// Plain C++17, no MLIR/LLVM. Two vocabulary kinds, both behaving like
// llama.cpp's so that a Kiln artifact sees the same ids as llama.cpp does for
// the same GGUF:
//   - "gpt2": byte-level BPE. A pre-tokenizer (chosen by the `pre` name)
//     splits text into words, each word's bytes are mapped to printable
//     codepoints, and merges apply by rank.
//   - "llama": SentencePiece-style. Spaces become U+2581, the highest-scoring
//     adjacent pair that is a token merges first, and characters that are not
//     tokens fall back to <0xXX> byte tokens.
// Control, unknown and user-defined tokens are cut out of the text before
// either runs (control and unknown ones only when parseSpecial is set).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_TOKENIZER_H
#define KILN_RUNTIME_TOKENIZER_H

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kiln {

class Tokenizer {
public:
  /// Builds a tokenizer from the artifact's vocabulary section, a JSON object
  /// whose keys mirror the GGUF `tokenizer.*` metadata:
  ///   model ("gpt2" | "llama"), pre, tokens, token_types, scores, merges,
  ///   bos_id, eos_id, eot_id, unk_id, pad_id, add_bos, add_eos,
  ///   add_space_prefix, chat_template.
  /// Optional flags that are absent or null take llama.cpp's defaults for the
  /// model and pre-tokenizer. Returns nullptr and sets `error` on bad input.
  static std::unique_ptr<Tokenizer> fromJSON(std::string_view json,
                                             std::string &error);

  ~Tokenizer();
  Tokenizer(const Tokenizer &) = delete;
  Tokenizer &operator=(const Tokenizer &) = delete;

  /// `addSpecial` adds BOS/EOS where the vocabulary asks for them;
  /// `parseSpecial` lets control tokens written in the text (e.g.
  /// "<|im_start|>") become their ids. User-defined tokens always do.
  std::vector<int32_t> encode(std::string_view text, bool addSpecial,
                              bool parseSpecial) const;

  /// The bytes `id` stands for. Control, unknown and user-defined tokens
  /// render as their text; unused tokens and out-of-range ids as "".
  std::string tokenToPiece(int32_t id) const;

  /// Inverse of encode: drops the BOS/EOS that addSpecial would add, removes
  /// the space a SentencePiece vocabulary prefixes, renders special tokens as
  /// their text, and for pre-tokenizers where llama.cpp cleans up spaces
  /// before punctuation (default, gpt2, llama3) does the same.
  std::string decode(const std::vector<int32_t> &ids) const;

  /// One user turn plus the assistant prefix, in the model's chat format
  /// (ChatML, Llama-3 or Gemma, recognised from chat_template), with the
  /// default system prompt the template adds when it has a literal one.
  /// BOS is not included (encode with addSpecial adds it).
  bool applyChatTemplate(std::string_view userMessage, std::string &out,
                         std::string &error) const;

  int32_t bos() const;
  int32_t eos() const;
  /// EOS, EOT and the tokens llama.cpp treats as end-of-generation by their
  /// text ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", ...).
  bool isEndOfGeneration(int32_t id) const;
  size_t size() const;
  bool addBos() const;

  struct Impl;

private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl;
};

} // namespace kiln

#endif // KILN_RUNTIME_TOKENIZER_H
