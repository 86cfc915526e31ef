#include "agent/redactor.hpp"

#include <algorithm>

namespace sandbox::agent {

Redactor::Redactor(const std::vector<std::string>& secrets) {
  for (const std::string& secret : secrets) {
    if (secret.size() < kMinRedactedSecretBytes) continue;
    if (std::find(secrets_.begin(), secrets_.end(), secret) != secrets_.end()) continue;
    secrets_.push_back(secret);
    starts_[static_cast<unsigned char>(secret.front())] = true;
  }
  std::stable_sort(secrets_.begin(), secrets_.end(),
                   [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

void Redactor::feed(std::string_view data, std::string& out) {
  if (!active()) {
    out.append(data);
    return;
  }
  held_.append(data);
  scan(out, false);
}

void Redactor::finish(std::string& out) {
  scan(out, true);  // nothing is undecided at EOF: releases all
  held_.clear();
}

void Redactor::scan(std::string& out, bool at_eof) {
  const std::string_view input = held_;
  std::size_t i = 0;       // next byte to decide
  std::size_t copied = 0;  // input[copied, i) passes unchanged, not yet appended
  while (i < input.size()) {
    if (!starts_[static_cast<unsigned char>(input[i])]) {
      ++i;
      continue;
    }
    const std::string_view rest = input.substr(i);
    bool undecided = false;
    std::size_t match = 0;  // length of the longest secret starting at i
    for (const std::string& secret : secrets_) {
      if (secret.size() > rest.size()) {
        // Could still match once more input arrives: rest is a proper prefix of it.
        if (!at_eof && !undecided && std::string_view(secret).starts_with(rest)) undecided = true;
      } else if (rest.starts_with(secret)) {
        match = secret.size();  // longest first: the first full match is the longest
        break;
      }
    }
    // A longer secret may still start here: hold everything from i, decide later. (A full
    // match of a shorter one waits with it: the longest secret wins.)
    if (undecided) break;
    if (match == 0) {
      ++i;
      continue;
    }
    out.append(input.substr(copied, i - copied));
    out.append(kRedactedMarker);
    i += match;
    copied = i;
  }
  out.append(input.substr(copied, i - copied));
  held_.erase(0, i);
}

}  // namespace sandbox::agent
