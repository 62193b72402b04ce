//===- tokenize-driver.cpp - the runtime tokenizer on stdin, for tests ----===//
//
// kiln-tokenize-driver [--decode | --chat] VOCAB.json
//
// Reads one JSON value per line from stdin and answers one line each:
//   encode (default): {"text": "...", "hex": "<bytes in hex, instead of
//       text>", "add_special": bool, "parse_special": bool} or a bare string
//       -> [ids...]
//   --decode: [ids...] -> the decoded bytes in hex
//   --chat:   "user message" -> {"ok": true, "text": "..."} or
//       {"ok": false, "error": "..."}
// Hex keeps arbitrary bytes (invalid UTF-8 included) exact in both
// directions. The first line of output describes the vocabulary.
//
//===----------------------------------------------------------------------===//

#include "Runtime/Tokenizer.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

using nlohmann::json;

static std::string toHex(const std::string &bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

static bool fromHex(const std::string &hex, std::string &out) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9')
      return c - '0';
    if (c >= 'a' && c <= 'f')
      return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
      return c - 'A' + 10;
    return -1;
  };
  if (hex.size() % 2)
    return false;
  out.clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0)
      return false;
    out.push_back(char(hi * 16 + lo));
  }
  return true;
}

int main(int argc, char **argv) {
  enum { Encode, Decode, Chat } mode = Encode;
  std::string vocabPath;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--decode")
      mode = Decode;
    else if (arg == "--chat")
      mode = Chat;
    else
      vocabPath = arg;
  }
  if (vocabPath.empty()) {
    std::cerr << "usage: kiln-tokenize-driver [--decode | --chat] VOCAB.json\n";
    return 2;
  }
  std::ifstream file(vocabPath, std::ios::binary);
  if (!file) {
    std::cerr << "kiln-tokenize-driver: cannot open " << vocabPath << "\n";
    return 1;
  }
  std::stringstream buffer;
  buffer << file.rdbuf();
  std::string error;
  auto tok = kiln::Tokenizer::fromJSON(buffer.str(), error);
  if (!tok) {
    std::cerr << "kiln-tokenize-driver: " << error << "\n";
    return 1;
  }
  std::cout << json{{"size", tok->size()},
                    {"bos", tok->bos()},
                    {"eos", tok->eos()},
                    {"add_bos", tok->addBos()}}
                   .dump()
            << "\n";

  std::string line;
  while (std::getline(std::cin, line)) {
    try {
      json in = json::parse(line);
      if (mode == Decode) {
        std::vector<int32_t> ids = in.get<std::vector<int32_t>>();
        std::cout << json(toHex(tok->decode(ids))).dump() << "\n";
      } else if (mode == Chat) {
        std::string out;
        json result;
        if (tok->applyChatTemplate(in.get<std::string>(), out, error))
          result = {{"ok", true}, {"text", out}};
        else
          result = {{"ok", false}, {"error", error}};
        std::cout << result.dump() << "\n";
      } else {
        std::string text;
        bool addSpecial = false, parseSpecial = false;
        if (in.is_string()) {
          text = in.get<std::string>();
        } else {
          if (in.contains("hex")) {
            if (!fromHex(in["hex"].get<std::string>(), text))
              throw std::runtime_error("bad hex");
          } else {
            text = in.at("text").get<std::string>();
          }
          addSpecial = in.value("add_special", false);
          parseSpecial = in.value("parse_special", false);
        }
        std::cout << json(tok->encode(text, addSpecial, parseSpecial)).dump()
                  << "\n";
      }
    } catch (const std::exception &e) {
      std::cerr << "kiln-tokenize-driver: bad input line: " << e.what() << "\n";
      return 1;
    }
    std::cout.flush();
  }
  return 0;
}
