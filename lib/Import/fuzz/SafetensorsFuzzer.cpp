//===- SafetensorsFuzzer.cpp - libFuzzer entry for the safetensors reader -===//
//
// Input layout: one control byte, then the bytes. Control bit 0 clear: the
// bytes are a .safetensors file for SafetensorsFile::parse (and the pickle
// sniffer); set: they are config.json text for parseLlamaConfig. Any input
// must either parse or return an error; a crash, sanitizer report, leak or
// timeout is a bug. On a successful parse every tensor's bytes are touched
// and the reader's promises (ranges tile the data section, each range holds
// exactly its shape's elements, names find their tensors) are checked.
//
//===----------------------------------------------------------------------===//

#include "Import/Safetensors.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>

using namespace kiln::safetensors;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  llvm::StringRef bytes(reinterpret_cast<const char *>(data + 1), size - 1);
  if (data[0] & 1) {
    auto config = parseLlamaConfig(bytes, "config.json");
    if (!config)
      llvm::consumeError(config.takeError());
    return 0;
  }
  (void)hasPickleMagic(llvm::ArrayRef<uint8_t>(data + 1, size - 1));
  auto file = SafetensorsFile::parse(llvm::MemoryBuffer::getMemBuffer(
      bytes, "fuzz.safetensors", /*RequiresNullTerminator=*/false));
  if (!file) {
    llvm::consumeError(file.takeError());
    return 0;
  }
  volatile uint8_t sink = 0;
  uint64_t next = 0;
  for (const TensorInfo &info : file->tensors()) {
    if (info.begin != next || info.end < info.begin)
      std::abort(); // ranges tile the data section in order
    next = info.end;
    uint64_t elements = 1;
    for (uint64_t d : info.shape)
      elements *= d;
    if (elements * getDTypeSize(info.dtype) != info.byteSize())
      std::abort();
    if (file->findTensor(info.name) != &info)
      std::abort();
    llvm::ArrayRef<uint8_t> tensor = file->tensorData(info);
    if (tensor.size() != info.byteSize())
      std::abort();
    if (!tensor.empty())
      sink = sink ^ tensor.front() ^ tensor.back();
  }
  if (file->dataOffset() + next != file->fileSize())
    std::abort(); // nothing past the last tensor
  (void)sink;
  return 0;
}
