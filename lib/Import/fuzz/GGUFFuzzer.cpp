//===- GGUFFuzzer.cpp - libFuzzer entry for the GGUF reader ---------------===//
//
// Feeds arbitrary bytes to GGUFFile::parse. Any input must either parse or
// return an error; a crash, sanitizer report, leak or timeout is a bug. On a
// successful parse every tensor's bytes are touched so that ASan checks the
// validated ranges.
//
//===----------------------------------------------------------------------===//

#include "Import/GGUF.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  auto buffer = llvm::MemoryBuffer::getMemBuffer(
      llvm::StringRef(reinterpret_cast<const char *>(data), size), "fuzz.gguf",
      /*RequiresNullTerminator=*/false);
  auto file = kiln::gguf::GGUFFile::parse(std::move(buffer));
  if (!file) {
    llvm::consumeError(file.takeError());
    return 0;
  }
  volatile uint8_t sink = 0;
  for (const kiln::gguf::TensorInfo &info : file->tensors()) {
    llvm::ArrayRef<uint8_t> bytes = file->tensorData(info);
    if (!bytes.empty())
      sink = sink ^ bytes.front() ^ bytes.back();
  }
  for (const kiln::gguf::KeyValue &kv : file->metadata())
    if (kv.value.isArray() && kv.value.getArraySize() != 0)
      (void)kv.value.getArrayElement(kv.value.getArraySize() - 1);
  (void)sink;
  return 0;
}
