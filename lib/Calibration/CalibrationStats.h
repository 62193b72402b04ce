//===- CalibrationStats.h - per-layer input statistics of a model -*- C++ -*-===//
//
// What calibrated compression reads about a model's linear layers: for each
// distinct input of one or more linear layers (q/k/v share one, gate/up
// another), statistics of that input over calibration text, collected by
// running the float model through Kiln itself:
//   kiln-compile model.gguf --activations=f32 --calibration-taps -o cal.kiln
//   kiln-run -m cal.kiln --collect-stats text.txt -o model.kstats
// and read by kiln-compile --quantize=...,stats=model.kstats (GPTQ, AWQ) and
// the pruning passes (Wanda, SparseGPT).
//
// The file (".kstats"), every number little-endian:
//   char     magic[8]     "KILNSTAT"
//   u32      version      1, or 2 when the records carry `cross`
//   u32      n_inputs
//   u64      n_tokens     calibration tokens every input was seen on
//   n_inputs records, in the order of the model's layers:
//     u32    n_weights    >= 1
//     n_weights times:  u32 length, then `length` bytes: the tensor name of
//                       a weight that multiplies this input, as the model
//                       file names it ("blk.0.attn_q.weight")
//     u32    cols         K, the input width (the weights' inner dimension)
//     f32    mean_abs[K]  (1/N) sum_t |x_t[k]|                       (AWQ)
//     f32    hessian[K*K] (1/N) sum_t x_t x_t^T, row-major, symmetric
//                         (GPTQ, SparseGPT; Wanda's squared column norm of
//                         input k is N * hessian[k*K + k])
//     f32    cross[K*K]   version 2 only: (1/N) sum_t x_t y_t^T, row-major,
//                         y_t the same input of the teacher on the same
//                         tokens (kiln-distill's student-input fit)
// where N = n_tokens and x_t is the layer's input for token t. Nothing follows
// the last record. Version 2 comes from kiln-run --collect-stats --teacher:
// x runs the compressed student, y its uncompressed teacher.
//
// Plain C++17 (no MLIR or LLVM): kiln-run writes it, the compiler reads it.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CALIBRATION_CALIBRATIONSTATS_H
#define KILN_CALIBRATION_CALIBRATIONSTATS_H

#include <cstdint>
#include <string>
#include <vector>

namespace kiln {

/// Statistics of one input shared by the linear layers in `weights`.
struct InputStatistics {
  std::vector<std::string> weights;
  int64_t cols = 0;
  std::vector<float> meanAbs; // [cols]
  std::vector<float> hessian; // [cols * cols]
  /// E[x y^T] against the teacher's input y ([cols * cols]), or empty.
  std::vector<float> cross;
};

struct CalibrationStatistics {
  uint64_t nTokens = 0;
  std::vector<InputStatistics> inputs;

  /// The input that weight `name` multiplies, or null.
  const InputStatistics *findWeight(const std::string &name) const;
};

/// Reads a .kstats file; false with a one-line message naming the file and
/// what is wrong.
bool readCalibrationStatistics(const std::string &path,
                               CalibrationStatistics &out, std::string &err);

/// Writes `stats` to `path` (through a temporary file renamed into place).
bool writeCalibrationStatistics(const std::string &path,
                                const CalibrationStatistics &stats,
                                std::string &err);

/// Sums over calibration rows of one input, in float64, as kiln-run
/// --collect-stats feeds them step by step.
class InputAccumulator {
public:
  explicit InputAccumulator(int64_t cols);
  /// Adds `rows` rows of `cols` floats (row-major).
  void add(const float *rows, int64_t nRows);
  /// Also sums rows x_t y_t^T, `teacherRows` the same input of the teacher
  /// on the same tokens; then finish() fills `cross`.
  void addWithTeacher(const float *rows, const float *teacherRows,
                      int64_t nRows);
  /// The means over the rows added so far.
  InputStatistics finish(std::vector<std::string> weights) const;
  uint64_t getRows() const { return nRows; }

private:
  int64_t cols;
  uint64_t nRows = 0;
  std::vector<double> absSum;  // [cols]
  std::vector<double> outerSum; // [cols * cols], lower triangle filled
  std::vector<double> crossSum; // [cols * cols] once addWithTeacher ran
};

} // namespace kiln

#endif // KILN_CALIBRATION_CALIBRATIONSTATS_H
