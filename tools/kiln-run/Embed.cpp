//===- Embed.cpp - kiln-run --embed and --embed-file ----------------------===//

#include "Embed.h"

#include <cstdio>
#include <fstream>
#include <sstream>

namespace kiln::run {

bool runEmbed(kiln_model *model, const std::vector<std::string> &texts,
              std::string &err) {
  if (!kiln_model_is_encoder(model)) {
    err = "--embed needs an encoder model (this one generates text)";
    return false;
  }
  const char *why = nullptr;
  kiln_session *session = nullptr;
  if (kiln_session_create(model, 0, &session, &why)) {
    err = why;
    return false;
  }
  std::vector<float> embedding(kiln_model_n_embd(model));
  for (const std::string &text : texts) {
    if (kiln_embed(session, text.c_str(), embedding.data(), embedding.size(),
                   &why)) {
      err = why;
      kiln_session_free(session);
      return false;
    }
    // %.9g: every f32 prints back to the same bits.
    for (size_t i = 0; i < embedding.size(); ++i)
      std::printf("%s%.9g", i ? " " : "", double(embedding[i]));
    std::printf("\n");
  }
  kiln_session_free(session);
  return true;
}

bool readLines(const std::string &path, std::vector<std::string> &lines,
               std::string &err) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    err = path + ": cannot open";
    return false;
  }
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    lines.push_back(line);
  }
  if (in.bad()) {
    err = path + ": read error";
    return false;
  }
  return true;
}

} // namespace kiln::run
