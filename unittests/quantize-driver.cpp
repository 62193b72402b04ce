//===- quantize-driver.cpp - kiln-quantize's row encoders on a file -------===//
//
// kiln-quantize-driver OPTIONS K IN OUT: reads float32 rows of K values from
// IN, encodes each row as kiln-compile --quantize=OPTIONS would, and writes
// the bytes to OUT. test/Quantize compares them with the gguf Python package
// and with a float64 numpy reference.
//
//===----------------------------------------------------------------------===//

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
  std::vector<float> row(k);
  std::vector<uint8_t> out(rows * encoding->rowBytes(k));
  for (size_t r = 0; r < rows; ++r) {
    std::memcpy(row.data(), (*input)->getBufferStart() + r * rowInputBytes,
                rowInputBytes);
    encoding->quantizeRow(row.data(), k,
                          out.data() + r * encoding->rowBytes(k));
  }
  std::error_code ec;
  llvm::raw_fd_ostream os(argv[4], ec);
  if (ec) {
    llvm::errs() << "error: " << argv[4] << ": " << ec.message() << "\n";
    return 1;
  }
  os.write(reinterpret_cast<const char *>(out.data()), out.size());
  return 0;
}
