#pragma once
// Durations and byte counts as people type them on command lines (sandbox-run, sandbox-agent).

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace sandbox {

/// Parses a duration: `<n>ms`, `<n>s`, `<n>m`, `<n>h`, or a bare `<n>` meaning seconds (as
/// coreutils' `timeout` reads it). `n` is a whole number; the result must be positive and
/// fit in milliseconds. `std::nullopt` for anything else.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

/// Parses a byte count: a whole number, optionally followed by `K`, `M` or `G` (powers of
/// 1024). Must be positive. `std::nullopt` for anything else or on overflow.
std::optional<std::uint64_t> parse_byte_count(std::string_view text);

}  // namespace sandbox
