#include "bpe.hpp"

#include <climits>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "utf8.hpp"

namespace attnlab {

namespace {

bool read_text(const std::string& path, std::string& out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::ostringstream ss;
  ss << f.rdbuf();
  out = ss.str();
  return true;
}

bool is_space(char32_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' || c == 0xA0 || c == 0x3000 || (c >= 0x2000 && c <= 0x200A); }
bool is_letter(char32_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= 0x80 && !is_space(c)); }
bool is_digit(char32_t c) { return c >= '0' && c <= '9'; }

}  // namespace

std::vector<std::pair<std::size_t, std::size_t>> ByteBpe::pre_tokenize(const std::string& text) {
  const auto cps = utf8_decode(text);  // valid UTF-8: the caller checks
  std::vector<std::pair<std::size_t, std::size_t>> out;
  const std::size_t n = cps.size();
  auto at = [&](std::size_t i) -> char32_t { return i < n ? cps[i].value : 0; };
  auto end_of = [&](std::size_t i) { return i < n ? cps[i].begin : (n ? cps[n - 1].end : 0); };
  std::size_t i = 0;
  while (i < n) {
    const char32_t c = at(i);
    // contractions
    if (c == '\'') {
      static const char* suffixes[] = {"s", "t", "re", "ve", "m", "ll", "d"};
      std::size_t len = 0;
      for (const char* s : suffixes) {
        std::size_t k = 0;
        while (s[k] && at(i + 1 + k) == static_cast<char32_t>(s[k])) ++k;
        if (!s[k] && k > len) len = k;
      }
      if (len) {
        out.push_back({cps[i].begin, end_of(i + 1 + len)});
        i += 1 + len;
        continue;
      }
    }
    const std::size_t start = i;
    const std::size_t j = c == ' ' ? i + 1 : i;  // an optional leading space
    const char32_t d = at(j);
    if (j < n && is_letter(d)) {
      std::size_t k = j;
      while (k < n && is_letter(at(k))) ++k;
      out.push_back({cps[start].begin, end_of(k)});
      i = k;
    } else if (j < n && is_digit(d)) {
      std::size_t k = j;
      while (k < n && is_digit(at(k))) ++k;
      out.push_back({cps[start].begin, end_of(k)});
      i = k;
    } else if (j < n && !is_space(d)) {
      std::size_t k = j;
      while (k < n && !is_space(at(k)) && !is_letter(at(k)) && !is_digit(at(k))) ++k;
      out.push_back({cps[start].begin, end_of(k)});
      i = k;
    } else {  // whitespace: \s+(?!\S) leaves the last space to the next piece, else \s+
      std::size_t k = i;
      while (k < n && is_space(at(k))) ++k;
      if (k < n && k - i > 1) --k;  // followed by a non-space: keep one back
      out.push_back({cps[i].begin, end_of(k)});
      i = k;
    }
  }
  return out;
}

std::unique_ptr<ByteBpe> ByteBpe::from_strings(const std::string& vocab_json, const std::string& merges_txt,
                                               std::string& error) {
  auto b = std::unique_ptr<ByteBpe>(new ByteBpe);
  // bytes_to_unicode (encoder.py): printable bytes map to themselves, the rest to 256 + k
  int extra = 0;
  for (int x = 0; x < 256; ++x) {
    const bool printable = (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255);
    const char32_t cp = printable ? static_cast<char32_t>(x) : static_cast<char32_t>(256 + extra++);
    b->byte_to_symbol_[x] = utf8_encode(cp);
    b->symbol_to_byte_[b->byte_to_symbol_[x]] = static_cast<unsigned char>(x);
  }
  try {
    const auto v = nlohmann::json::parse(vocab_json);
    for (const auto& [tok, id] : v.items()) b->vocab_[tok] = id.get<int>();
  } catch (const std::exception& e) {
    error = std::string("vocabulary is not a JSON object of token -> id (") + e.what() + ")";
    return nullptr;
  }
  std::istringstream in(merges_txt);
  std::string line;
  int rank = 0;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.starts_with("#version")) continue;
    const auto sp = line.find(' ');
    if (sp == std::string::npos) {
      error = "merges: line '" + line.substr(0, 40) + "' is not two symbols";
      return nullptr;
    }
    b->ranks_[{line.substr(0, sp), line.substr(sp + 1)}] = rank++;
  }
  return b;
}

std::unique_ptr<ByteBpe> ByteBpe::load(const std::string& dir, std::string& error) {
  std::string vocab, merges;
  if (read_text(dir + "/vocab.json", vocab) && read_text(dir + "/merges.txt", merges)) {
    auto b = from_strings(vocab, merges, error);
    if (!b) error = dir + ": " + error;
    return b;
  }
  std::string tj;
  if (!read_text(dir + "/tokenizer.json", tj)) {
    error = dir + ": no tokenizer (vocab.json + merges.txt, or tokenizer.json)";
    return nullptr;
  }
  try {
    const auto j = nlohmann::json::parse(tj);
    const auto& model = j.at("model");
    if (model.value("type", std::string("BPE")) != "BPE") {
      error = dir + "/tokenizer.json: model type " + model.value("type", std::string()) + " is not BPE";
      return nullptr;
    }
    std::string m;
    for (const auto& x : model.at("merges"))
      m += (x.is_array() ? x[0].get<std::string>() + " " + x[1].get<std::string>() : x.get<std::string>()) + "\n";
    auto b = from_strings(model.at("vocab").dump(), m, error);
    if (!b) {
      error = dir + "/tokenizer.json: " + error;
      return nullptr;
    }
    // a normalizer that turns spaces into U+2581 marks the SentencePiece-style (Llama) tokenizer
    const std::string norm = j.contains("normalizer") ? j["normalizer"].dump() : "";
    b->metaspace_ = norm.find("\u2581") != std::string::npos || norm.find("\xe2\x96\x81") != std::string::npos ||
                    norm.find("Metaspace") != std::string::npos ||
                    (j.contains("pre_tokenizer") && j["pre_tokenizer"].dump().find("Metaspace") != std::string::npos);
    return b;
  } catch (const std::exception& e) {
    error = dir + "/tokenizer.json: " + e.what();
    return nullptr;
  }
}

namespace {
// merges in rank order over a word of symbols, each with the number of source bytes it covers
void merge_all(std::vector<std::string>& word, std::vector<std::size_t>& nbytes,
               const std::map<std::pair<std::string, std::string>, int>& ranks) {
  while (word.size() > 1) {
    int best = INT_MAX;
    std::pair<std::string, std::string> pair;
    for (std::size_t k = 0; k + 1 < word.size(); ++k) {
      const auto it = ranks.find({word[k], word[k + 1]});
      if (it != ranks.end() && it->second < best) best = it->second, pair = it->first;
    }
    if (best == INT_MAX) return;
    std::vector<std::string> merged;
    std::vector<std::size_t> merged_bytes;
    for (std::size_t k = 0; k < word.size(); ++k) {
      if (k + 1 < word.size() && word[k] == pair.first && word[k + 1] == pair.second) {
        merged.push_back(word[k] + word[k + 1]);
        merged_bytes.push_back(nbytes[k] + nbytes[k + 1]);
        ++k;
      } else {
        merged.push_back(word[k]);
        merged_bytes.push_back(nbytes[k]);
      }
    }
    word.swap(merged);
    nbytes.swap(merged_bytes);
  }
}
}  // namespace

bool ByteBpe::encode_metaspace(const std::string& text, std::vector<int>& ids, std::vector<Token>& tokens,
                               std::string& error) const {
  // "▁" first (covering no byte of the text), then every code point, spaces as "▁"
  std::vector<std::string> word{"\xE2\x96\x81"};
  std::vector<std::size_t> nbytes{0};
  for (const CodePoint& cp : utf8_decode(text)) {
    word.push_back(cp.value == ' ' ? std::string("\xE2\x96\x81") : text.substr(cp.begin, cp.end - cp.begin));
    nbytes.push_back(cp.end - cp.begin);
  }
  merge_all(word, nbytes, ranks_);
  std::size_t pos = 0;
  for (std::size_t k = 0; k < word.size(); ++k) {
    if (const auto it = vocab_.find(word[k]); it != vocab_.end()) {
      ids.push_back(it->second);
      tokens.push_back({text.substr(pos, nbytes[k]), pos, pos + nbytes[k]});
    } else {  // byte fallback: one <0xNN> token per UTF-8 byte of the symbol
      for (unsigned char c : word[k]) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", c);
        const auto b = vocab_.find(name);
        if (b == vocab_.end()) {
          error = "'" + word[k] + "' is neither in the vocabulary nor covered by byte-fallback tokens";
          return false;
        }
        ids.push_back(b->second);
        tokens.push_back({name, pos, pos + nbytes[k]});
      }
    }
    pos += nbytes[k];
  }
  return true;
}

bool ByteBpe::encode(const std::string& text, std::vector<int>& ids, std::vector<Token>& tokens, std::string& error) const {
  ids.clear();
  tokens.clear();
  if (auto bad = utf8_first_invalid(text)) {
    error = "the text is not valid UTF-8 (byte " + std::to_string(*bad) + ")";
    return false;
  }
  if (metaspace_) return encode_metaspace(text, ids, tokens, error);
  for (const auto& [b0, b1] : pre_tokenize(text)) {
    std::vector<std::string> word;
    std::vector<std::size_t> nbytes;
    for (std::size_t k = b0; k < b1; ++k) {
      word.push_back(byte_to_symbol_[static_cast<unsigned char>(text[k])]);
      nbytes.push_back(1);
    }
    merge_all(word, nbytes, ranks_);
    std::size_t pos = b0;
    for (std::size_t k = 0; k < word.size(); ++k) {
      const auto it = vocab_.find(word[k]);
      if (it == vocab_.end()) {
        error = "token '" + word[k] + "' is not in the vocabulary";
        return false;
      }
      ids.push_back(it->second);
      tokens.push_back({utf8_sanitize(text.substr(pos, nbytes[k])), pos, pos + nbytes[k]});
      pos += nbytes[k];
    }
  }
  return true;
}

}  // namespace attnlab
