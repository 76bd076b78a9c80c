/// Quotes a string for a POSIX shell: `'...'` with embedded quotes as `'\''`.
func shellQuote(_ s: String) -> String {
    if !s.isEmpty && s.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "/._-+:=@%,".contains($0)) }) {
        return s
    }
    return "'" + s.replacing("'", with: "'\\''") + "'"
}
