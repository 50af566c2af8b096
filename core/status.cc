// Status formatting and errno conversion.
#include "core/status.h"

#include <cerrno>
#include <cstring>
#include <fstream>

namespace kvf {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidArgument: return "invalid argument";
    case StatusCode::kCorruption: return "corruption";
    case StatusCode::kNotFound: return "not found";
    case StatusCode::kIoError: return "I/O error";
    case StatusCode::kUnavailable: return "unavailable";
    case StatusCode::kResourceExhausted: return "resource exhausted";
    case StatusCode::kUnsupported: return "unsupported";
    case StatusCode::kAborted: return "aborted";
  }
  return "unknown";
}

Status Status::FromErrno(int err, std::string_view context) {
  if (err < 0) err = -err;
  std::string msg(context);
  msg += ": ";
  msg += std::strerror(err);
  return Status(StatusCode::kIoError, std::move(msg), err);
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  std::string s(StatusCodeName(code_));
  s += ": ";
  s += message_;
  return s;
}

Result<std::string> ReadFileUpTo(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot open " + path);
  std::string text;
  text.resize(max_bytes + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  // A read that failed (a directory opens, then reads EISDIR) is not an
  // empty file (a review's --redis-conf DIR read no renames, silently).
  if (in.bad()) return Status::FromErrno(errno, "cannot read " + path);
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > max_bytes)
    return ResourceExhausted(path + ": larger than " + std::to_string(max_bytes >> 20) + " MiB");
  return text;
}

}  // namespace kvf
