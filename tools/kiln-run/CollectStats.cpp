//===- CollectStats.cpp - kiln-run --collect-stats ------------------------===//

#include "CollectStats.h"
#include "Measure.h"

#include "Calibration/CalibrationStats.h"

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <vector>

namespace kiln::run {
namespace {

/// The offset of the first byte that is not part of well-formed UTF-8 (or a
/// NUL, which no text holds), or npos.
size_t findNonText(const std::string &s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = s[i];
    if (c == 0)
      return i;
    size_t length = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3
                                 : (c >> 3) == 0x1e ? 4 : 0;
    if (length == 0 || i + length > s.size())
      return i;
    for (size_t k = 1; k < length; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2)
        return i;
    i += length;
  }
  return std::string::npos;
}

/// Tap `i`'s weight names (comma-separated) and width; false with `err` set.
bool readTap(kiln_model *model, int32_t i, std::string &names, int32_t &cols,
             std::string &err) {
  const char *list = nullptr, *e = nullptr;
  if (kiln_model_tap(model, i, &list, &cols, &e)) {
    err = e;
    return false;
  }
  names = list;
  return true;
}

} // namespace

bool collectStatistics(kiln_model *model, kiln_model *teacher,
                       const CollectStatsOptions &opts, std::string &err) {
  const int32_t nTaps = kiln_model_n_taps(model);
  if (nTaps == 0) {
    err = "the model has no calibration taps (compile it with kiln-compile "
          "--activations=f32 --calibration-taps)";
    return false;
  }
  std::string text;
  if (!readTextFile(opts.textPath, text, err))
    return false;
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
    err = opts.textPath + ": the calibration text is empty";
    return false;
  }
  if (size_t bad = findNonText(text); bad != std::string::npos) {
    err = opts.textPath + ": not a text file (byte " + std::to_string(bad) +
          " is not UTF-8 text)";
    return false;
  }
  int modelCtx = kiln_model_n_ctx(model);
  if (teacher)
    modelCtx = std::min(modelCtx, kiln_model_n_ctx(teacher));
  int nCtx = opts.nCtx ? opts.nCtx : std::min(512, modelCtx);
  if (nCtx < 1 || nCtx > modelCtx) {
    err = "calibration context " + std::to_string(nCtx) + " must be 1 to " +
          std::to_string(modelCtx) + " (the models' n_ctx)";
    return false;
  }

  const char *e = nullptr;
  std::vector<int32_t> tokens, bos;
  if (!tokenizeText(model, text, tokens, err) ||
      !tokenizeText(model, "", bos, err))
    return false;
  size_t nChunks = (tokens.size() + nCtx - 1) / size_t(nCtx);
  if (opts.maxChunks > 0)
    nChunks = std::min(nChunks, size_t(opts.maxChunks));

  std::vector<InputAccumulator> sums;
  std::vector<std::vector<std::string>> weights(nTaps);
  if (teacher && kiln_model_n_taps(teacher) != nTaps) {
    err = "the teacher has " + std::to_string(kiln_model_n_taps(teacher)) +
          " calibration taps, the model " + std::to_string(nTaps) +
          " (compile both from one architecture with --calibration-taps)";
    return false;
  }
  for (int32_t i = 0; i < nTaps; ++i) {
    std::string names, teacherNames;
    int32_t cols = 0, teacherCols = 0;
    if (!readTap(model, i, names, cols, err) ||
        (teacher && !readTap(teacher, i, teacherNames, teacherCols, err)))
      return false;
    if (teacher && (names != teacherNames || cols != teacherCols)) {
      err = "calibration tap " + std::to_string(i) + " is '" + names +
            "' of width " + std::to_string(cols) + " in the model but '" +
            teacherNames + "' of width " + std::to_string(teacherCols) +
            " in the teacher";
      return false;
    }
    std::stringstream list(names);
    for (std::string name; std::getline(list, name, ',');)
      weights[i].push_back(name);
    sums.emplace_back(cols);
  }

  kiln_session *session = nullptr, *teacherSession = nullptr;
  if (kiln_session_create(model, nCtx, &session, &e)) {
    err = e;
    return false;
  }
  if (teacher && kiln_session_create(teacher, nCtx, &teacherSession, &e)) {
    err = e;
    kiln_session_free(session);
    return false;
  }
  auto freeSessions = [&] {
    kiln_session_free(session);
    if (teacherSession)
      kiln_session_free(teacherSession);
  };
  int maxTokens = kiln_model_max_tokens(model);
  if (teacher)
    maxTokens = std::min(maxTokens, kiln_model_max_tokens(teacher));
  const int batch = std::max(1, std::min(maxTokens, nCtx));
  uint64_t seen = 0;
  std::fprintf(stderr,
               "kiln-run: collect-stats: %zu tokens, %zu chunks of up to %d, "
               "%d inputs\n",
               tokens.size(), nChunks, nCtx, nTaps);
  for (size_t c = 0; c < nChunks; ++c) {
    size_t begin = c * size_t(nCtx);
    std::vector<int32_t> chunk(
        tokens.begin() + begin,
        tokens.begin() + std::min(tokens.size(), begin + nCtx));
    if (bos.size() == 1)
      chunk[0] = bos[0];
    kiln_session_reset(session);
    if (teacherSession)
      kiln_session_reset(teacherSession);
    for (size_t start = 0; start < chunk.size(); start += batch) {
      size_t n = std::min<size_t>(batch, chunk.size() - start);
      // Every row's logits: the output head's input holds only the rows
      // whose logits are kept.
      if (kiln_eval(session, chunk.data() + start, n, int32_t(n), &e) ||
          (teacherSession && kiln_eval(teacherSession, chunk.data() + start,
                                       n, int32_t(n), &e))) {
        err = e;
        freeSessions();
        return false;
      }
      for (int32_t i = 0; i < nTaps; ++i) {
        int32_t rows = 0, teacherRows = 0;
        const float *x = kiln_session_tap(session, i, &rows);
        const float *y = teacherSession
                             ? kiln_session_tap(teacherSession, i, &teacherRows)
                             : nullptr;
        if (!x || size_t(rows) != n ||
            (teacherSession && (!y || teacherRows != rows))) {
          err = "the model or teacher left no calibration tap " +
                std::to_string(i) + " after a step (is it running on a GPU?)";
          freeSessions();
          return false;
        }
        if (y)
          sums[i].addWithTeacher(x, y, rows);
        else
          sums[i].add(x, rows);
      }
      seen += n;
    }
  }
  freeSessions();

  CalibrationStatistics stats;
  stats.nTokens = seen;
  for (int32_t i = 0; i < nTaps; ++i)
    stats.inputs.push_back(sums[i].finish(std::move(weights[i])));
  if (!writeCalibrationStatistics(opts.outputPath, stats, err))
    return false;
  std::fprintf(stderr, "kiln-run: collect-stats: %llu tokens, wrote %s\n",
               static_cast<unsigned long long>(seen), opts.outputPath.c_str());
  return true;
}

} // namespace kiln::run
