// json_mutation: small random edits of JSON text for the differential tests of the one-pass
// readers (a fast lane must agree with JsonSkim on broken input too, not only on real chunks).
#pragma once

#include <random>
#include <string>

namespace tokentap::test {

// 1-3 edits (replace, insert or erase one byte), the new bytes drawn from the characters that
// change JSON structure most, plus a few letters and digits.
std::string mutate_json(std::string text, std::mt19937& rng);

}  // namespace tokentap::test
