//===- CalibrationStats.cpp - read, write and accumulate .kstats files ----===//

#include "Calibration/CalibrationStats.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace kiln {

namespace {

constexpr char kMagic[8] = {'K', 'I', 'L', 'N', 'S', 'T', 'A', 'T'};
constexpr uint32_t kVersion = 1;
/// Records that also carry the cross moments against a teacher.
constexpr uint32_t kVersionWithCross = 2;
/// Far above any model's width; keeps a corrupt count from asking for
/// terabytes.
constexpr uint32_t kMaxCols = 1 << 16;

/// Bounds-checked little-endian reads over the file's bytes.
class ByteReader {
public:
  ByteReader(const std::string &bytes) : bytes(bytes) {}

  bool read(void *out, size_t n) {
    if (bytes.size() - pos < n)
      return false;
    std::memcpy(out, bytes.data() + pos, n);
    pos += n;
    return true;
  }
  template <typename T> bool read(T &value) { return read(&value, sizeof(T)); }
  bool floats(std::vector<float> &out, size_t n) {
    if ((bytes.size() - pos) / sizeof(float) < n)
      return false;
    out.resize(n);
    return read(out.data(), n * sizeof(float));
  }
  bool atEnd() const { return pos == bytes.size(); }

private:
  const std::string &bytes;
  size_t pos = 0;
};

template <typename T> void append(std::string &out, const T &value) {
  out.append(reinterpret_cast<const char *>(&value), sizeof(T));
}

} // namespace

const InputStatistics *
CalibrationStatistics::findWeight(const std::string &name) const {
  for (const InputStatistics &input : inputs)
    for (const std::string &weight : input.weights)
      if (weight == name)
        return &input;
  return nullptr;
}

bool readCalibrationStatistics(const std::string &path,
                               CalibrationStatistics &out, std::string &err) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    err = path + ": cannot open the calibration statistics";
    return false;
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string bytes = buffer.str();
  ByteReader r(bytes);
  auto bad = [&](const std::string &what) {
    err = path + ": not a Kiln statistics file (kiln-run --collect-stats): " +
          what;
    return false;
  };
  char magic[8];
  uint32_t version = 0, nInputs = 0;
  CalibrationStatistics stats;
  if (!r.read(magic, 8) || std::memcmp(magic, kMagic, 8) != 0)
    return bad("no KILNSTAT magic");
  if (!r.read(version) || (version != kVersion && version != kVersionWithCross))
    return bad("version " + std::to_string(version) + ", expected " +
               std::to_string(kVersion) + " or " +
               std::to_string(kVersionWithCross));
  if (!r.read(nInputs) || !r.read(stats.nTokens))
    return bad("truncated header");
  if (stats.nTokens == 0)
    return bad("no calibration tokens");
  for (uint32_t i = 0; i < nInputs; ++i) {
    std::string where = "input " + std::to_string(i);
    InputStatistics input;
    uint32_t nWeights = 0, cols = 0;
    if (!r.read(nWeights) || nWeights == 0 || nWeights > 1024)
      return bad(where + ": bad weight count");
    for (uint32_t w = 0; w < nWeights; ++w) {
      uint32_t length = 0;
      std::string name;
      if (!r.read(length) || length == 0 || length > 4096)
        return bad(where + ": bad name length");
      name.resize(length);
      if (!r.read(name.data(), length))
        return bad(where + ": truncated name");
      input.weights.push_back(std::move(name));
    }
    if (!r.read(cols) || cols == 0 || cols > kMaxCols)
      return bad(where + ": bad width");
    input.cols = cols;
    if (!r.floats(input.meanAbs, cols) ||
        !r.floats(input.hessian, size_t(cols) * cols) ||
        (version == kVersionWithCross &&
         !r.floats(input.cross, size_t(cols) * cols)))
      return bad(where + ": truncated");
    for (float v : input.hessian)
      if (!std::isfinite(v))
        return bad(where + ": a Hessian entry is not finite");
    for (float v : input.cross)
      if (!std::isfinite(v))
        return bad(where + ": a cross moment is not finite");
    stats.inputs.push_back(std::move(input));
  }
  if (!r.atEnd())
    return bad("bytes after the last input");
  out = std::move(stats);
  return true;
}

bool writeCalibrationStatistics(const std::string &path,
                                const CalibrationStatistics &stats,
                                std::string &err) {
  bool withCross = !stats.inputs.empty();
  for (const InputStatistics &input : stats.inputs)
    withCross &= !input.cross.empty();
  std::string bytes(kMagic, 8);
  append(bytes, withCross ? kVersionWithCross : kVersion);
  append(bytes, uint32_t(stats.inputs.size()));
  append(bytes, stats.nTokens);
  for (const InputStatistics &input : stats.inputs) {
    append(bytes, uint32_t(input.weights.size()));
    for (const std::string &name : input.weights) {
      append(bytes, uint32_t(name.size()));
      bytes += name;
    }
    append(bytes, uint32_t(input.cols));
    bytes.append(reinterpret_cast<const char *>(input.meanAbs.data()),
                 input.meanAbs.size() * sizeof(float));
    bytes.append(reinterpret_cast<const char *>(input.hessian.data()),
                 input.hessian.size() * sizeof(float));
    if (withCross)
      bytes.append(reinterpret_cast<const char *>(input.cross.data()),
                   input.cross.size() * sizeof(float));
  }
  std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    if (!out.write(bytes.data(), std::streamsize(bytes.size())) ||
        !out.flush()) {
      err = temporary + ": cannot write";
      std::remove(temporary.c_str());
      return false;
    }
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    err = path + ": cannot write (rename failed)";
    std::remove(temporary.c_str());
    return false;
  }
  return true;
}

InputAccumulator::InputAccumulator(int64_t cols)
    : cols(cols), absSum(cols), outerSum(size_t(cols) * cols) {}

void InputAccumulator::add(const float *rows, int64_t count) {
  for (int64_t t = 0; t < count; ++t)
    for (int64_t k = 0; k < cols; ++k)
      absSum[k] += std::fabs(double(rows[t * cols + k]));
  // The lower triangle, a band of output rows at a time so the band stays
  // in cache while every input row streams past it.
  constexpr int64_t kBand = 32;
  for (int64_t band = 0; band < cols; band += kBand) {
    int64_t bandEnd = std::min(cols, band + kBand);
    for (int64_t t = 0; t < count; ++t) {
      const float *x = rows + t * cols;
      for (int64_t i = band; i < bandEnd; ++i) {
        double xi = x[i];
        double *out = &outerSum[size_t(i) * cols];
        for (int64_t j = 0; j <= i; ++j)
          out[j] += xi * double(x[j]);
      }
    }
  }
  nRows += uint64_t(count);
}

void InputAccumulator::addWithTeacher(const float *rows,
                                      const float *teacherRows,
                                      int64_t count) {
  add(rows, count);
  crossSum.resize(size_t(cols) * cols);
  // A band of output rows at a time, as add() does.
  constexpr int64_t kBand = 32;
  for (int64_t band = 0; band < cols; band += kBand) {
    int64_t bandEnd = std::min(cols, band + kBand);
    for (int64_t t = 0; t < count; ++t) {
      const float *x = rows + t * cols, *y = teacherRows + t * cols;
      for (int64_t i = band; i < bandEnd; ++i) {
        double xi = x[i];
        double *out = &crossSum[size_t(i) * cols];
        for (int64_t j = 0; j < cols; ++j)
          out[j] += xi * double(y[j]);
      }
    }
  }
}

InputStatistics InputAccumulator::finish(std::vector<std::string> weights) const {
  InputStatistics s;
  s.weights = std::move(weights);
  s.cols = cols;
  s.meanAbs.resize(cols);
  s.hessian.resize(size_t(cols) * cols);
  double n = nRows ? double(nRows) : 1.0;
  for (int64_t k = 0; k < cols; ++k)
    s.meanAbs[k] = float(absSum[k] / n);
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      float v = float(outerSum[size_t(i) * cols + j] / n);
      s.hessian[size_t(i) * cols + j] = v;
      s.hessian[size_t(j) * cols + i] = v;
    }
  s.cross.resize(crossSum.size());
  for (size_t i = 0; i < crossSum.size(); ++i)
    s.cross[i] = float(crossSum[i] / n);
  return s;
}

} // namespace kiln
