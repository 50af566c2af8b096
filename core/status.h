// Errors as values for the whole appliance: a Status (code + message) and a
// Result<T> that holds either a value or a Status. OS errors are converted
// from -errno exactly once, at the syscall boundary, with FromErrno().
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace kvf {

enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument,  // caller passed something malformed (config, flags)
  kCorruption,       // bytes on disk or wire failed a check
  kNotFound,
  kIoError,            // the OS refused; errno() says why
  kUnavailable,        // peer/device gone, try again later
  kResourceExhausted,  // a cap was hit (buffer, queue, disk budget)
  kUnsupported,        // kernel or library lacks a feature we need
  kAborted,            // stopped on request
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message, int sys_errno = 0)
      : code_(code), errno_(sys_errno), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  // Converts a positive errno value (or a negative -errno return, as
  // liburing and libbpf give) into an kIoError status with context.
  static Status FromErrno(int err, std::string_view context);

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  int sys_errno() const { return errno_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  int errno_ = 0;
  std::string message_;
};

inline Status InvalidArgument(std::string m) {
  return {StatusCode::kInvalidArgument, std::move(m)};
}
inline Status Corruption(std::string m) {
  return {StatusCode::kCorruption, std::move(m)};
}
inline Status NotFound(std::string m) {
  return {StatusCode::kNotFound, std::move(m)};
}
inline Status Unavailable(std::string m) {
  return {StatusCode::kUnavailable, std::move(m)};
}
inline Status ResourceExhausted(std::string m) {
  return {StatusCode::kResourceExhausted, std::move(m)};
}
inline Status Unsupported(std::string m) {
  return {StatusCode::kUnsupported, std::move(m)};
}

// Either a T or a non-ok Status. Accessing value() of an error is a bug.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(v_).ok() && "Result built from an ok Status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // The error; Status::Ok() when a value is held.
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(v_); }

 private:
  std::variant<T, Status> v_;
};

// A small file a user gives (a config, a command list), whole: NotFound if it
// cannot be opened, ResourceExhausted past `max_bytes` (never read further).
Result<std::string> ReadFileUpTo(const std::string& path, size_t max_bytes);

}  // namespace kvf

// Returns early from the enclosing function when `expr` yields a non-ok Status.
#define KVF_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::kvf::Status kvf_status_ = (expr);        \
    if (!kvf_status_.ok()) return kvf_status_; \
  } while (0)
