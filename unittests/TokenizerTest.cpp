//===- TokenizerTest.cpp - runtime tokenizer on hand-built vocabularies ---===//
//
// Small vocabularies whose right answers can be worked out by hand. The
// agreement with llama.cpp on a real vocabulary is the lit test
// test/Runtime/tokenizer-vs-llama-cpp.test.
//
//===----------------------------------------------------------------------===//

#include "Runtime/Tokenizer.h"
#include "Runtime/Unicode.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using kiln::Tokenizer;
using nlohmann::json;

namespace {

// Byte-level BPE: "Ġ" is the GPT-2 byte-level image of a space.
json bpeVocab() {
  return json{
      {"model", "gpt2"},
      {"pre", "gpt2"},
      // 0     1    2    3    4     5     6      7    8      9         10
      {"tokens", {"a", "b", "c", "ab", "bc", "abc", "Ġ", "Ġb", "aĠ", "<|s|>",
                  // 11   12   13   14   15
                  "<u>", "<", "|", "s", ">", "<|im_end|>"}},
      {"token_types", {1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 4, 1, 1, 1, 1, 1}},
      {"merges", {"b c", "a b", "a bc", "Ġ b", "a Ġ"}},
      {"bos_id", 9},
      {"eos_id", 15},
      {"eot_id", nullptr},
      {"add_bos", false},
      {"chat_template", ""},
  };
}

std::unique_ptr<Tokenizer> load(const json &j) {
  std::string error;
  auto tok = Tokenizer::fromJSON(j.dump(), error);
  EXPECT_TRUE(tok) << error;
  return tok;
}

std::string loadError(const std::string &text) {
  std::string error;
  auto tok = Tokenizer::fromJSON(text, error);
  EXPECT_FALSE(tok);
  return error;
}

std::string loadError(const json &j) { return loadError(j.dump()); }

using Ids = std::vector<int32_t>;

TEST(TokenizerBPE, MergesApplyByRank) {
  auto tok = load(bpeVocab());
  ASSERT_TRUE(tok);
  // "b c" (rank 0) beats "a b" (rank 1), then "a bc" (rank 2) finishes.
  EXPECT_EQ(tok->encode("abc", false, false), (Ids{5}));

  json j = bpeVocab();
  j["merges"] = {"a b", "b c", "a bc"};
  auto swapped = load(j);
  ASSERT_TRUE(swapped);
  // Now "a b" goes first and "ab c" is no merge: the rank order decides.
  EXPECT_EQ(swapped->encode("abc", false, false), (Ids{3, 2}));
}

TEST(TokenizerBPE, SpaceStaysWithTheFollowingWord) {
  auto tok = load(bpeVocab());
  ASSERT_TRUE(tok);
  // "a Ġ" is rank 4 but the pre-tokenizer splits "a" | " b", so it can
  // never apply; " b" becomes "Ġb".
  EXPECT_EQ(tok->encode("a b", false, false), (Ids{0, 7}));
  // Two spaces: the first stays alone (\s+(?!\S)), the second joins "b".
  EXPECT_EQ(tok->encode("a  b", false, false), (Ids{0, 6, 7}));
  EXPECT_EQ(tok->encode("", true, true), (Ids{}));
}

TEST(TokenizerBPE, SpecialTokensOnlyWhenParsingSpecial) {
  auto tok = load(bpeVocab());
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->encode("a<|s|>b", false, true), (Ids{0, 9, 1}));
  // As text: "a" "<|" "s" "|>" "b", each byte its own token.
  EXPECT_EQ(tok->encode("a<|s|>b", false, false), (Ids{0, 11, 12, 13, 12, 14, 1}));
  // User-defined tokens are cut out even without parseSpecial.
  EXPECT_EQ(tok->encode("a<u>b", false, false), (Ids{0, 10, 1}));
}

TEST(TokenizerBPE, DecodeInvertsEncode) {
  auto tok = load(bpeVocab());
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->tokenToPiece(7), " b");
  EXPECT_EQ(tok->tokenToPiece(9), "<|s|>");
  EXPECT_EQ(tok->tokenToPiece(-1), "");
  EXPECT_EQ(tok->tokenToPiece(1000), "");
  for (const char *text : {"abc", "a b", "a  b", "a<|s|>b"})
    EXPECT_EQ(tok->decode(tok->encode(text, false, true)), text);
}

TEST(TokenizerBPE, EndOfGenerationAndAccessors) {
  auto tok = load(bpeVocab());
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->size(), 16u);
  EXPECT_EQ(tok->bos(), 9);
  EXPECT_EQ(tok->eos(), 15);
  EXPECT_FALSE(tok->addBos());
  EXPECT_TRUE(tok->isEndOfGeneration(15));
  EXPECT_FALSE(tok->isEndOfGeneration(0));
  EXPECT_FALSE(tok->isEndOfGeneration(-3));
  // "<|im_end|>" is typed normal above; like llama.cpp we treat it as control.
  EXPECT_EQ(tok->encode("a<|im_end|>", false, true), (Ids{0, 15}));
}

TEST(TokenizerBPE, Llama3DefaultsAddBos) {
  json j = bpeVocab();
  j["pre"] = "llama-bpe";
  j.erase("add_bos");
  auto tok = load(j);
  ASSERT_TRUE(tok);
  EXPECT_TRUE(tok->addBos());
  EXPECT_EQ(tok->encode("abc", true, false), (Ids{9, 5}));
  EXPECT_EQ(tok->decode({9, 5}), "abc");
}

// llama.cpp's DEFAULT pre-tokenizer, which it runs for `pre` "default" and
// for a GGUF without one: punctuation runs (and $+<=>^~|) split off before
// the GPT-2 regex, then numbers split off their space, then ASCII digits go
// in threes from the left.
json defaultPreVocab(const char *pre) {
  return json{
      {"model", "gpt2"},
      {"pre", pre},
      // Ids: a 0, b 1, ! 2, Ġ 3, Ġ! 4, digits 1-4 5-8, 12 9, 123 10, Ġ1 11,
      // ' 12, t 13, 't 14, $ 15, Ġ$ 16, and the bytes of "«" (C2 AB): Â 17,
      // « 18, ĠÂ 19.
      {"tokens", {"a",   "b",  "!", "Ġ", "Ġ!", "1", "2",  "3", "4", "12",
                  "123", "Ġ1", "'", "t", "'t", "$", "Ġ$", "Â", "«", "ĠÂ"}},
      {"merges", {"Ġ !", "1 2", "12 3", "Ġ 1", "' t", "Ġ $", "Ġ Â"}},
      {"bos_id", 0},
      {"eos_id", 1},
  };
}

TEST(TokenizerBPE, DefaultPreTokenizer) {
  for (const char *pre : {"default", ""}) {
    SCOPED_TRACE(pre);
    auto tok = load(defaultPreVocab(pre));
    ASSERT_TRUE(tok);
    EXPECT_FALSE(tok->addBos());
    // GPT-2 alone would give " !" (4), " 1" (11), "'t" (14), " $" (16) and
    // " «" (19 18).
    EXPECT_EQ(tok->encode("a !", false, false), (Ids{0, 3, 2}));
    EXPECT_EQ(tok->encode(" 1", false, false), (Ids{3, 5}));
    EXPECT_EQ(tok->encode("a't", false, false), (Ids{0, 12, 13}));
    EXPECT_EQ(tok->encode(" $", false, false), (Ids{3, 15}));
    EXPECT_EQ(tok->encode(" \xC2\xAB", false, false), (Ids{3, 17, 18}));
    // "412" "34", not "4" "123" "4".
    EXPECT_EQ(tok->encode("41234", false, false), (Ids{8, 9, 7, 8}));
    // Like llama.cpp, decode drops the space before '!'.
    EXPECT_EQ(tok->decode({0, 3, 2}), "a!");
  }
  json j = defaultPreVocab("Default");
  EXPECT_NE(loadError(j).find("unsupported pre-tokenizer 'Default' for a gpt2 "
                              "vocabulary (Kiln knows default, gpt2,"),
            std::string::npos);
}

// SentencePiece-style: scores decide, U+2581 stands for a space.
json spmVocab() {
  return json{
      {"model", "llama"},
      {"pre", ""},
      // 0       1      2       3     4     5        6       7          8
      {"tokens", {"<unk>", "<s>", "</s>", "▁", "h", "i", "▁h", "hi", "<0xC3>",
                  // 9        10            11
                  "<0xA9>", "<start_of_turn>", "<0x0A>"}},
      {"token_types", {2, 3, 3, 1, 1, 1, 1, 1, 6, 6, 3, 6}},
      {"scores", {0, 0, 0, -3, -4, -4, -1, -2, 0, 0, 0, 0}},
      {"bos_id", 1},
      {"eos_id", 2},
      {"unk_id", 0},
      {"add_bos", true},
      {"add_space_prefix", true},
      {"chat_template", "{{ '<start_of_turn>user\\n' }}"},
  };
}

TEST(TokenizerSPM, HighestScoreMergesFirst) {
  auto tok = load(spmVocab());
  ASSERT_TRUE(tok);
  // "▁hi": "▁h" (-1) beats "hi" (-2).
  EXPECT_EQ(tok->encode("hi", true, false), (Ids{1, 6, 5}));
  json j = spmVocab();
  j["scores"][7] = -0.5;
  auto other = load(j);
  ASSERT_TRUE(other);
  EXPECT_EQ(other->encode("hi", false, false), (Ids{3, 7}));
}

TEST(TokenizerSPM, ByteFallback) {
  auto tok = load(spmVocab());
  ASSERT_TRUE(tok);
  // "é" is no token: its two UTF-8 bytes become <0xC3> <0xA9>.
  EXPECT_EQ(tok->encode("\xC3\xA9", false, false), (Ids{3, 8, 9}));
  EXPECT_EQ(tok->tokenToPiece(8), "\xC3");
  EXPECT_EQ(tok->decode({1, 3, 8, 9}), "\xC3\xA9");
  EXPECT_EQ(tok->encode("\n", false, false), (Ids{3, 11}));
}

TEST(TokenizerSPM, SpecialTokensAndSpacePrefix) {
  auto tok = load(spmVocab());
  ASSERT_TRUE(tok);
  // After a special token the text gets the space prefix again.
  EXPECT_EQ(tok->encode("<start_of_turn>hi", true, true), (Ids{1, 10, 6, 5}));
  EXPECT_EQ(tok->decode(tok->encode("hi hi", true, false)), "hi hi");
}

TEST(TokenizerChat, Formats) {
  std::string out, error;
  auto gemma = load(spmVocab());
  ASSERT_TRUE(gemma);
  ASSERT_TRUE(gemma->applyChatTemplate(" hello ", out, error)) << error;
  EXPECT_EQ(out, "<start_of_turn>user\nhello<end_of_turn>\n<start_of_turn>model\n");

  json j = bpeVocab();
  j["chat_template"] =
      "{% if loop.first and messages[0]['role'] != 'system' %}{{ "
      "'<|im_start|>system\nYou are helpful<|im_end|>\n' }}{% endif %}"
      "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
      "'<|im_end|>' + '\n'}}";
  auto chatml = load(j);
  ASSERT_TRUE(chatml);
  ASSERT_TRUE(chatml->applyChatTemplate("hi", out, error)) << error;
  EXPECT_EQ(out, "<|im_start|>system\nYou are helpful<|im_end|>\n"
                 "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");

  // No literal system turn: no default prompt.
  j["chat_template"] = "{{'<|im_start|>' + message['role'] + '\\n'}}";
  auto plain = load(j);
  ASSERT_TRUE(plain->applyChatTemplate("hi", out, error)) << error;
  EXPECT_EQ(out, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");

  j["chat_template"] = "{{ '<|start_header_id|>' + message['role'] }}";
  auto llama3 = load(j);
  ASSERT_TRUE(llama3->applyChatTemplate("hi\n", out, error)) << error;
  EXPECT_EQ(out, "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
                 "<|start_header_id|>assistant<|end_header_id|>\n\n");

  // Llama 2's [INST] (the family llama.cpp picks for a template with no
  // Mistral marker); chat-templates-vs-llama-cpp.test checks the others.
  j["chat_template"] = "[INST] {{ message }} [/INST]";
  auto llama2 = load(j);
  ASSERT_TRUE(llama2->applyChatTemplate("hi", out, error)) << error;
  EXPECT_EQ(out, "[INST] hi [/INST]");

  j["chat_template"] = "<|turn|>{{ message }}";
  auto unknown = load(j);
  EXPECT_FALSE(unknown->applyChatTemplate("hi", out, error));
  EXPECT_NE(error.find("unrecognised chat template"), std::string::npos);

  j["chat_template"] = "";
  auto none = load(j);
  EXPECT_FALSE(none->applyChatTemplate("hi", out, error));
  EXPECT_NE(error.find("no chat template"), std::string::npos);
}

TEST(TokenizerErrors, BadInput) {
  EXPECT_NE(loadError(std::string("{\"model\": ")).find("not valid JSON"), std::string::npos);

  json j = bpeVocab();
  j["token_types"] = {1, 1};
  EXPECT_NE(loadError(j).find("'token_types' has 2 entries but there are 16"),
            std::string::npos);

  j = spmVocab();
  j["scores"] = {0.5};
  EXPECT_NE(loadError(j).find("'scores' has 1 entries"), std::string::npos);

  j = bpeVocab();
  j["bos_id"] = 16;
  EXPECT_NE(loadError(j).find("bos_id = 16 is not an id"), std::string::npos);
  j = bpeVocab();
  j["eos_id"] = -1;
  EXPECT_NE(loadError(j).find("eos_id = -1"), std::string::npos);
  j = bpeVocab();
  j["unk_id"] = 99;
  EXPECT_NE(loadError(j).find("unk_id = 99"), std::string::npos);

  j = bpeVocab();
  j["merges"] = {"b c", "abc"};
  EXPECT_NE(loadError(j).find("merges[1] is not of the form"), std::string::npos);
  j["merges"] = {"b "};
  EXPECT_NE(loadError(j).find("merges[0]"), std::string::npos);
  j.erase("merges");
  EXPECT_NE(loadError(j).find("needs a 'merges' array"), std::string::npos);

  // Invalid UTF-8 in a token, written raw into the JSON text.
  std::string raw = bpeVocab().dump();
  size_t at = raw.find("\"abc\"");
  ASSERT_NE(at, std::string::npos);
  raw.replace(at, 5, "\"a\xFF\xFE\"");
  EXPECT_NE(loadError(raw).find("UTF-8"), std::string::npos);

  j = bpeVocab();
  j["model"] = "t5";
  EXPECT_NE(loadError(j).find("unknown tokenizer model 't5'"), std::string::npos);
  j["model"] = "bert"; // WordPiece: unknown words need an [UNK] id
  EXPECT_NE(loadError(j).find("needs 'unk_id'"), std::string::npos);
  j.erase("model");
  EXPECT_NE(loadError(j).find("missing 'model'"), std::string::npos);

  j = bpeVocab();
  j["pre"] = "mystery";
  EXPECT_NE(loadError(j).find("unsupported pre-tokenizer 'mystery'"),
            std::string::npos);

  j = bpeVocab();
  j["token_types"][3] = 9;
  EXPECT_NE(loadError(j).find("token_types[3]"), std::string::npos);

  j = bpeVocab();
  j["tokens"] = json::array();
  EXPECT_NE(loadError(j).find("'tokens' must be a non-empty array"),
            std::string::npos);

  j = bpeVocab();
  j["add_bos"] = "yes";
  EXPECT_NE(loadError(j).find("'add_bos' must be a boolean"), std::string::npos);

  // nlohmann::json parses and destroys without recursion, so a million
  // levels of nesting are an error here, not a stack overflow (llvm::json
  // needs a depth limit: see SafetensorsTest).
  std::string deep = std::string(1000000, '[') + std::string(1000000, ']');
  EXPECT_NE(loadError("{\"model\":" + deep + "}").find("'model'"),
            std::string::npos);
}

TEST(Unicode, Classes) {
  using namespace kiln::unicode;
  EXPECT_TRUE(isLetter('a'));
  EXPECT_TRUE(isLetter(0x65E5)); // 日
  EXPECT_TRUE(isLetter(0x0639)); // Arabic ain
  EXPECT_TRUE(isNumber('7'));
  EXPECT_TRUE(isNumber(0x0663)); // Arabic-Indic three
  EXPECT_TRUE(isNumber(0x00BD)); // ½ (No)
  EXPECT_TRUE(isWhitespace(0x3000));
  EXPECT_TRUE(isWhitespace(0x85));
  EXPECT_FALSE(isWhitespace(0x200B)); // zero width space is not White_Space
  EXPECT_FALSE(isLetter(0x1F642));    // 🙂
  EXPECT_TRUE(isPunctuation('!'));
  EXPECT_TRUE(isPunctuation('_'));     // Pc
  EXPECT_TRUE(isPunctuation(0x00AB));  // « (Pi)
  EXPECT_TRUE(isPunctuation(0x3001));  // 、
  EXPECT_FALSE(isPunctuation('$'));    // Sc
  EXPECT_FALSE(isPunctuation('`'));    // Sk
  EXPECT_FALSE(isPunctuation(0x20AC)); // €
  EXPECT_EQ(codepointFlags('$'), kSymbol);     // Sc
  EXPECT_EQ(codepointFlags(0x1F642), kSymbol); // 🙂 (So)
  EXPECT_EQ(codepointFlags(0x0301), kMark);    // combining acute (Mn)
  EXPECT_EQ(codepointFlags(0x200B), 0);        // Cf: no class
  EXPECT_EQ(codepointFlags(0x110000), 0);
  EXPECT_EQ(byteToCodepoint(' '), 0x120u); // Ġ
  EXPECT_EQ(codepointToByte(0x120), ' ');
  EXPECT_EQ(decodeUtf8Lossy("a\xFF"), (std::vector<uint32_t>{'a', 0xFFFD}));
  EXPECT_FALSE(isValidUtf8("\xC0\xAF")); // overlong
  EXPECT_TRUE(isValidUtf8("\xF0\x9F\x99\x82"));
}

} // namespace
