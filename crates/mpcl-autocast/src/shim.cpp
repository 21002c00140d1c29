// C entry points over at::autocast for the Rust side (src/lib.rs). Each catches what libtorch
// throws and reports it as a message, since a C++ exception must not cross into Rust.

#include <ATen/autocast_mode.h>

#include <cstring>
#include <exception>

namespace {

void copy_message(const char* what, char* buffer, size_t size) {
  if (size == 0) return;
  std::strncpy(buffer, what, size - 1);
  buffer[size - 1] = '\0';
}

}  // namespace

extern "C" {

// Reads whether autocast is on for `device` and its lower-precision dtype (as c10's
// ScalarType number). Returns 0, or 1 with a message in `error`.
int mpcl_autocast_state(int device, bool* enabled, int* dtype, char* error, size_t size) {
  try {
    auto type = static_cast<c10::DeviceType>(device);
    *enabled = at::autocast::is_autocast_enabled(type);
    *dtype = static_cast<int>(at::autocast::get_autocast_dtype(type));
    return 0;
  } catch (const std::exception& e) {
    copy_message(e.what(), error, size);
    return 1;
  }
}

// Sets autocast on or off for `device` with the given dtype. Returns 0, or 1 with a message.
int mpcl_autocast_set(int device, bool enabled, int dtype, char* error, size_t size) {
  try {
    auto type = static_cast<c10::DeviceType>(device);
    at::autocast::set_autocast_dtype(type, static_cast<c10::ScalarType>(dtype));
    at::autocast::set_autocast_enabled(type, enabled);
    return 0;
  } catch (const std::exception& e) {
    copy_message(e.what(), error, size);
    return 1;
  }
}

// Enters an autocast region (libtorch counts nesting to know when its cast cache may go).
void mpcl_autocast_enter() { at::autocast::increment_nesting(); }

// Leaves an autocast region, dropping the cache of cast weights when the outermost one ends.
void mpcl_autocast_leave() {
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
}

}  // extern "C"
