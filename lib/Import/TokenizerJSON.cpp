//===- TokenizerJSON.cpp - Hugging Face tokenizer.json as a vocabulary ----===//
//
// Format: huggingface/tokenizers (tokenizers/src/tokenizer/serialization.rs):
// {"added_tokens": [{"id", "content", "special"}], "pre_tokenizer": {...},
//  "post_processor": {...}, "model": {"type": "BPE", "vocab": {text: id},
//  "merges": ["a b"] or [["a", "b"]]}}.
//
//===----------------------------------------------------------------------===//

#include "Import/TokenizerJSON.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/JSON.h"

#include <vector>

namespace kiln {

namespace {

llvm::Error fail(llvm::StringRef path, const llvm::Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 path + ": " + what);
}

// GGUF token types (ggml docs/gguf.md, tokenizer.ggml.token_type).
enum TokenType : int64_t {
  Normal = 1,
  Control = 3,
  UserDefined = 4,
  Unused = 5
};

// The split patterns of the byte-level BPE pre-tokenizers the runtime
// implements, as their tokenizer.json files spell them.
constexpr llvm::StringLiteral kLlama3Pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr llvm::StringLiteral kQwen2Pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/// The runtime's `pre` name for a pre_tokenizer object, or "" if it has none.
std::string preTokenizerName(const llvm::json::Object &pre) {
  std::optional<llvm::StringRef> type = pre.getString("type");
  if (type == "ByteLevel")
    return pre.getBoolean("use_regex").value_or(true) ? "gpt2" : "";
  if (type != "Sequence")
    return "";
  const llvm::json::Array *steps = pre.getArray("pretokenizers");
  if (!steps || steps->size() != 2 || !(*steps)[0].getAsObject() ||
      !(*steps)[1].getAsObject())
    return "";
  const llvm::json::Object &split = *(*steps)[0].getAsObject();
  const llvm::json::Object &bytes = *(*steps)[1].getAsObject();
  if (split.getString("type") != "Split" ||
      bytes.getString("type") != "ByteLevel" ||
      bytes.getBoolean("use_regex").value_or(true))
    return "";
  const llvm::json::Object *pattern = split.getObject("pattern");
  std::optional<llvm::StringRef> regex =
      pattern ? pattern->getString("Regex") : std::nullopt;
  if (regex == kLlama3Pattern)
    return "llama3";
  if (regex == kQwen2Pattern)
    return "qwen2";
  return "";
}

/// Tokens by id from a model's vocab object and the added tokens (special
/// ones as control tokens); ids without a token are unused "[PADn]".
llvm::Error readTokens(const llvm::json::Object &root,
                       const llvm::json::Object &model, llvm::StringRef path,
                       int64_t vocabSize, std::vector<std::string> &tokens,
                       std::vector<int64_t> &types) {
  tokens.assign(vocabSize, "");
  types.assign(vocabSize, Unused);
  auto place = [&](llvm::StringRef token, const llvm::json::Value &idValue,
                   int64_t type) -> llvm::Error {
    std::optional<int64_t> id = idValue.getAsInteger();
    if (!id || *id < 0 || *id >= vocabSize)
      return fail(path, "token '" + token + "' has an id outside [0, " +
                            llvm::Twine(vocabSize) + ") (vocab_size)");
    tokens[*id] = token.str();
    types[*id] = type;
    return llvm::Error::success();
  };
  const llvm::json::Object *vocab = model.getObject("vocab");
  if (!vocab)
    return fail(path, "model.vocab is missing or not an object");
  for (const auto &[token, id] : *vocab)
    if (auto e = place(token, id, Normal))
      return e;
  if (const llvm::json::Array *added = root.getArray("added_tokens")) {
    for (const llvm::json::Value &entry : *added) {
      const llvm::json::Object *t = entry.getAsObject();
      std::optional<llvm::StringRef> content =
          t ? t->getString("content") : std::nullopt;
      const llvm::json::Value *id = t ? t->get("id") : nullptr;
      if (!content || !id)
        return fail(path, "added_tokens holds an entry without id and content");
      bool isSpecial = t->getBoolean("special").value_or(false);
      if (auto e = place(*content, *id, isSpecial ? Control : UserDefined))
        return e;
    }
  }
  for (int64_t i = 0; i < vocabSize; ++i)
    if (types[i] == Unused)
      tokens[i] = "[PAD" + std::to_string(i) + "]";
  return llvm::Error::success();
}

/// A BERT WordPiece tokenizer: BertNormalizer, BertPreTokenizer, WordPiece
/// and the [CLS] A [SEP] template, as the runtime's "bert" model reads them.
llvm::Expected<std::string> convertWordPiece(const llvm::json::Object &root,
                                             const llvm::json::Object &model,
                                             llvm::StringRef path,
                                             int64_t vocabSize) {
  std::vector<std::string> tokens;
  std::vector<int64_t> types;
  if (auto e = readTokens(root, model, path, vocabSize, tokens, types))
    return std::move(e);
  auto idOf = [&](llvm::StringRef token) -> int64_t {
    for (size_t i = 0; i < tokens.size(); ++i)
      if (tokens[i] == token)
        return int64_t(i);
    return -1;
  };
  const llvm::json::Object *normalizer = root.getObject("normalizer");
  if (!normalizer || normalizer->getString("type") != "BertNormalizer")
    return fail(path, "a WordPiece tokenizer needs the BertNormalizer");
  const llvm::json::Object *pre = root.getObject("pre_tokenizer");
  if (!pre || pre->getString("type") != "BertPreTokenizer")
    return fail(path, "a WordPiece tokenizer needs the BertPreTokenizer");
  bool lowercase = normalizer->getBoolean("lowercase").value_or(true);
  // tokenizers' BertNormalizer: strip_accents null follows lowercase.
  const llvm::json::Value *strip = normalizer->get("strip_accents");
  bool stripAccents =
      strip && strip->getAsBoolean() ? *strip->getAsBoolean() : lowercase;
  std::string unk = model.getString("unk_token").value_or("[UNK]").str();
  int64_t unkId = idOf(unk), clsId = idOf("[CLS]"), sepId = idOf("[SEP]"),
          padId = idOf("[PAD]");
  if (unkId < 0 || clsId < 0 || sepId < 0)
    return fail(path,
                "the WordPiece vocabulary lacks " + unk + ", [CLS] or [SEP]");
  auto idOrNull = [](int64_t id) {
    return id >= 0 ? llvm::json::Value(id) : llvm::json::Value(nullptr);
  };
  llvm::json::Object out{
      {"model", "bert"},
      {"tokens", llvm::json::Array(tokens)},
      {"token_types", llvm::json::Array(types)},
      {"bos_id", clsId},
      {"eos_id", sepId},
      {"unk_id", unkId},
      {"pad_id", idOrNull(padId)},
      {"add_bos", true},
      {"add_eos", true},
      {"lowercase", lowercase},
      {"strip_accents", stripAccents},
      {"clean_text", normalizer->getBoolean("clean_text").value_or(true)},
      {"handle_chinese_chars",
       normalizer->getBoolean("handle_chinese_chars").value_or(true)},
      {"subword_prefix",
       model.getString("continuing_subword_prefix").value_or("##")},
      {"max_input_chars_per_word",
       model.getInteger("max_input_chars_per_word").value_or(100)},
      {"chat_template", ""}};
  std::string result;
  llvm::raw_string_ostream(result) << llvm::json::Value(std::move(out));
  return result;
}

} // namespace

llvm::Expected<std::string> convertTokenizerJSON(llvm::StringRef text,
                                                 llvm::StringRef path,
                                                 int64_t vocabSize,
                                                 SpecialTokenIds special) {
  llvm::Expected<llvm::json::Value> json = llvm::json::parse(text);
  if (!json)
    return fail(path, "is not valid JSON: " + llvm::toString(json.takeError()));
  const llvm::json::Object *root = json->getAsObject();
  const llvm::json::Object *model = root ? root->getObject("model") : nullptr;
  if (!model)
    return fail(path, "model is missing or not an object");
  std::optional<llvm::StringRef> modelType = model->getString("type");
  if (modelType == "WordPiece")
    return convertWordPiece(*root, *model, path, vocabSize);
  if (modelType != "BPE")
    return fail(path, "model type '" + modelType.value_or("") +
                          "' is not supported (BPE, WordPiece)");
  const llvm::json::Object *pre = root->getObject("pre_tokenizer");
  std::string preName = pre ? preTokenizerName(*pre) : "";
  if (preName.empty())
    return fail(path, "pre_tokenizer is not one Kiln reproduces (ByteLevel, "
                      "or the Llama 3 or Qwen2 Split + ByteLevel)");

  std::vector<std::string> tokens;
  std::vector<int64_t> types;
  if (auto e = readTokens(*root, *model, path, vocabSize, tokens, types))
    return std::move(e);

  llvm::json::Array merges;
  if (const llvm::json::Array *list = model->getArray("merges")) {
    for (const llvm::json::Value &m : *list) {
      if (std::optional<llvm::StringRef> s = m.getAsString()) {
        merges.push_back(*s);
        continue;
      }
      const llvm::json::Array *pair = m.getAsArray();
      if (!pair || pair->size() != 2 || !(*pair)[0].getAsString() ||
          !(*pair)[1].getAsString())
        return fail(path, "model.merges holds an entry that is not a pair");
      merges.push_back(
          (*(*pair)[0].getAsString() + " " + *(*pair)[1].getAsString()).str());
    }
  }

  llvm::json::Object out{{"model", "gpt2"},
                         {"pre", preName},
                         {"tokens", llvm::json::Array(tokens)},
                         {"token_types", llvm::json::Array(types)},
                         {"merges", std::move(merges)},
                         {"chat_template", ""}};
  for (auto [field, id] :
       {std::pair<const char *, int64_t>{"bos_id", special.bos},
        {"eos_id", special.eos}})
    out[field] = id >= 0 ? llvm::json::Value(id) : llvm::json::Value(nullptr);
  // A post-processor template that starts with a special token adds BOS.
  if (const llvm::json::Object *post = root->getObject("post_processor")) {
    const llvm::json::Array *single = post->getArray("single");
    if (post->getString("type") == "TemplateProcessing" && single &&
        !single->empty() && single->front().getAsObject())
      out["add_bos"] =
          single->front().getAsObject()->getObject("SpecialToken") != nullptr;
  }
  std::string result;
  llvm::raw_string_ostream(result) << llvm::json::Value(std::move(out));
  return result;
}

} // namespace kiln
