//===- NestingLimit.cpp - refuse MLIR text nested too deep to parse -------===//

#include "Compiler/NestingLimit.h"

#include "mlir/Bytecode/BytecodeReader.h"
#include "llvm/Support/FormatVariadic.h"

namespace kiln {

llvm::Error checkNestingDepth(llvm::MemoryBufferRef source) {
  if (mlir::isBytecode(source))
    return llvm::Error::success();
  llvm::StringRef text = source.getBuffer();
  unsigned depth = 0, line = 1;
  size_t lineStart = 0;
  for (size_t i = 0, e = text.size(); i < e; ++i) {
    switch (text[i]) {
    case '\n':
      ++line;
      lineStart = i + 1;
      break;
    case '"':
      // A string literal ends at its closing quote (the lexer also ends it,
      // with an error, at a line break); brackets inside do not nest.
      while (i + 1 < e && text[i + 1] != '"' && text[i + 1] != '\n')
        i += text[i + 1] == '\\' && i + 2 < e && text[i + 2] != '\n' ? 2 : 1;
      if (i + 1 < e && text[i + 1] == '"')
        ++i;
      break;
    case '/':
      if (i + 1 < e && text[i + 1] == '/')
        while (i + 1 < e && text[i + 1] != '\n')
          ++i;
      break;
    case '{':
    case '(':
    case '[':
    case '<':
      if (++depth > kMaxNestingDepth)
        return llvm::createStringError(
            llvm::inconvertibleErrorCode(),
            llvm::formatv("{0}:{1}:{2}: nesting deeper than {3} levels "
                          "(Kiln's limit; the parser recurses once per level)",
                          source.getBufferIdentifier(), line, i - lineStart + 1,
                          kMaxNestingDepth));
      break;
    case '>':
      // The arrow of a function type and affine sets' `>=` close nothing.
      if ((i > 0 && text[i - 1] == '-') || (i + 1 < e && text[i + 1] == '='))
        break;
      [[fallthrough]];
    case '}':
    case ')':
    case ']':
      // Unbalanced closers are the parser's to report; they do not make
      // later nesting shallower than zero.
      if (depth > 0)
        --depth;
      break;
    }
  }
  return llvm::Error::success();
}

} // namespace kiln
