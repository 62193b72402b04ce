//===- quantize-driver.cpp - kiln-quantize's row encoders on a file -------===//
//
// kiln-quantize-driver OPTIONS K IN OUT: reads float32 rows of K values from
// IN, encodes them as kiln-compile --quantize=OPTIONS would (with gptq or
// awq, against the first input of the stats= file), and writes the bytes to
// OUT; with awq, the rows are W diag(s) and the K column scales s go to
// OUT.scales (float32), as kiln-quantize folds 1/s into the norm before.
// test/Quantize compares them with the gguf Python package and with float64
// numpy references.
//
//===----------------------------------------------------------------------===//

#include "Calibration/CalibrationStats.h"
#include "Kiln/Transforms/AWQ.h"
#include "Kiln/Transforms/QuantizeOptions.h"

#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <cstring>
#include <vector>

int main(int argc, char **argv) {
  if (argc != 5) {
    llvm::errs() << "usage: kiln-quantize-driver OPTIONS K IN OUT\n";
    return 2;
  }
  int64_t k = 0;
  if (llvm::StringRef(argv[2]).getAsInteger(10, k) || k <= 0) {
    llvm::errs() << "error: K must be a positive integer\n";
    return 1;
  }
  auto fail = [](llvm::Error e) {
    llvm::errs() << "error: " << llvm::toString(std::move(e)) << "\n";
    return 1;
  };
  llvm::Expected<kiln::QuantizeOptions> options =
      kiln::parseQuantizeOptions(argv[1]);
  if (!options)
    return fail(options.takeError());
  llvm::Expected<kiln::RowEncoding> encoding =
      kiln::chooseRowEncoding(*options, k);
  if (!encoding)
    return fail(encoding.takeError());
  auto input = llvm::MemoryBuffer::getFile(argv[3], /*IsText=*/false,
                                           /*RequiresNullTerminator=*/false);
  if (!input) {
    llvm::errs() << "error: " << argv[3] << ": " << input.getError().message()
                 << "\n";
    return 1;
  }
  size_t rowInputBytes = size_t(k) * sizeof(float);
  if ((*input)->getBufferSize() % rowInputBytes != 0) {
    llvm::errs() << "error: input is not a whole number of rows\n";
    return 1;
  }
  size_t rows = (*input)->getBufferSize() / rowInputBytes;
  std::vector<float> values(rows * k);
  std::memcpy(values.data(), (*input)->getBufferStart(), rows * rowInputBytes);
  kiln::CalibrationStatistics stats;
  if (!options->statisticsPath.empty()) {
    std::string err;
    if (!kiln::readCalibrationStatistics(options->statisticsPath, stats, err) ||
        stats.inputs.empty()) {
      llvm::errs() << "error: " << (err.empty() ? "no inputs" : err) << "\n";
      return 1;
    }
    const kiln::InputStatistics &first = stats.inputs.front();
    options->statistics =
        [&](llvm::StringRef) -> std::optional<kiln::InputStatisticsView> {
      return kiln::InputStatisticsView{first.cols, first.meanAbs.data(),
                                       first.hessian.data()};
    };
  }
  if (options->method == kiln::QuantizeMethod::AWQ) {
    const kiln::InputStatistics &first = stats.inputs.front();
    if (first.cols != k) {
      llvm::errs() << "error: the statistics are " << first.cols
                   << " wide, K is " << k << "\n";
      return 1;
    }
    std::vector<uint8_t> scratch(encoding->rowBytes(k));
    std::vector<float> scales = kiln::searchActivationScales(
        [&](const float *row, kiln::RoundingFeedback *feedback) {
          encoding->quantizeRow(row, k, scratch.data(), feedback);
        },
        {{values.data(), int64_t(rows)}}, k, first.meanAbs.data(),
        first.hessian.data());
    for (size_t i = 0; i < values.size(); ++i)
      values[i] *= scales[i % k];
    std::error_code ec;
    llvm::raw_fd_ostream os(std::string(argv[4]) + ".scales", ec);
    if (ec) {
      llvm::errs() << "error: " << argv[4] << ".scales: " << ec.message()
                   << "\n";
      return 1;
    }
    os.write(reinterpret_cast<const char *>(scales.data()),
             scales.size() * sizeof(float));
  }
  std::vector<uint8_t> out(rows * encoding->rowBytes(k));
  kiln::MatrixQuantizer quantizer(*options);
  if (llvm::Error e = quantizer.quantize(*encoding, values.data(), rows, k,
                                         "input", out.data()))
    return fail(std::move(e));
  std::error_code ec;
  llvm::raw_fd_ostream os(argv[4], ec);
  if (ec) {
    llvm::errs() << "error: " << argv[4] << ": " << ec.message() << "\n";
    return 1;
  }
  os.write(reinterpret_cast<const char *>(out.data()), out.size());
  return 0;
}
