#include "tokenizers/wordpiece.hpp"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/files.hpp"
#include "core/json_input.hpp"
#include "core/utf8.hpp"

namespace attnlab {

namespace {

bool is_ws(char32_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0xA0 || c == 0x3000 || (c >= 0x2000 && c <= 0x200A); }
bool is_control(char32_t c) { return (c < 0x20 && !is_ws(c)) || c == 0x7F || (c >= 0x80 && c < 0xA0); }
bool is_punct(char32_t c) {
  return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126) ||
         (c >= 0xA1 && c <= 0xBF && c != 0xAA && c != 0xB5 && c != 0xBA) || c == 0xD7 || c == 0xF7 || (c >= 0x2010 && c <= 0x2027) ||
         (c >= 0x2030 && c <= 0x205E) || (c >= 0x3001 && c <= 0x3003) || (c >= 0x3008 && c <= 0x3011);
}
bool is_cjk(char32_t c) { return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0xF900 && c <= 0xFAFF); }

// lower case and, for uncased models, the letter without its accent: the first character of
// the NFD decomposition where that is ASCII (tables for U+00C0-U+017F, '*': kept as it is)
char32_t fold(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  static const char* table =
      "aaaaaa*ceeeeiiii*nooooo**uuuuy**aaaaaa*ceeeeiiii*nooooo**uuuuy*y"     // U+00C0 - U+00FF
      "aaaaaaccccccccdd**eeeeeeeeeegggggggghh**iiiiiiiii***jjkk*llllll****"  // U+0100 - U+0143
      "nnnnnn***oooooo**rrrrrrsssssssstttt**uuuuuuuuuuuuwwyyyzzzzzz*";        // U+0144 - U+017F
  if (c >= 0xC0 && c <= 0x17F && table[c - 0xC0] != '*') return static_cast<unsigned char>(table[c - 0xC0]);
  return c;
}

}  // namespace

std::unique_ptr<WordPiece> WordPiece::from_vocab(const std::string& vocab_txt, bool lower_case, std::string& error) {
  auto w = std::unique_ptr<WordPiece>(new WordPiece);
  w->lower_ = lower_case;
  std::istringstream in(vocab_txt);
  std::string line;
  int id = 0;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    w->vocab_.emplace(line, id++);
    w->lines_.push_back(line);
  }
  auto need = [&](const char* t, int& out) {
    const auto it = w->vocab_.find(t);
    if (it == w->vocab_.end()) {
      error = std::string("has no ") + t + " token";
      return false;
    }
    out = it->second;
    return true;
  };
  if (!need("[UNK]", w->unk_) || !need("[CLS]", w->cls_) || !need("[SEP]", w->sep_)) return nullptr;
  return w;
}

std::unique_ptr<WordPiece> WordPiece::load(const std::string& dir, std::string& error) {
  const std::string path = dir + "/vocab.txt";
  std::string vocab;
  if (!is_regular_file(path) && std::filesystem::symlink_status(path).type() == std::filesystem::file_type::not_found) {
    error = dir + ": no vocab.txt (BERT's WordPiece vocabulary)";
    return nullptr;
  }
  if (!read_file_limited(path, kMaxTokenizerFileBytes, vocab, error, "a tokenizer file")) return nullptr;
  if (auto bad = utf8_first_invalid(vocab)) {
    error = path + ": not valid UTF-8 (byte " + std::to_string(*bad) + ")";
    return nullptr;
  }
  bool lower = true;
  const std::string cfg_path = dir + "/tokenizer_config.json";
  if (is_regular_file(cfg_path)) {
    std::string text;
    nlohmann::json c;
    if (!read_file_limited(cfg_path, kMaxConfigFileBytes, text, error, "a configuration file")) return nullptr;
    if (!parse_json_input(text, c, error)) {
      error = cfg_path + ": " + error;
      return nullptr;
    }
    if (!json_get(c, "do_lower_case", lower, error, cfg_path)) return nullptr;
  }
  auto w = from_vocab(vocab, lower, error);
  if (!w) error = path + ": " + error;
  return w;
}

bool WordPiece::encode(const std::string& text, std::vector<int>& ids, std::vector<Token>& tokens, std::string& error) const {
  ids.clear();
  tokens.clear();
  if (auto bad = utf8_first_invalid(text)) {
    error = "the text is not valid UTF-8 (byte " + std::to_string(*bad) + ")";
    return false;
  }
  // words: runs of non-space, non-punctuation characters; punctuation and CJK characters alone
  struct Word {
    std::u32string chars;
    std::size_t begin, end;
  };
  std::vector<Word> words;
  bool open = false;
  for (const CodePoint& cp : utf8_decode(text)) {
    const char32_t c = cp.value;
    if (is_control(c) || c == 0xFFFD || c == 0) continue;
    if (is_ws(c)) {
      open = false;
      continue;
    }
    const char32_t f = lower_ ? fold(c) : c;
    if (is_punct(c) || is_cjk(c)) {
      words.push_back({std::u32string(1, f), cp.begin, cp.end});
      open = false;
      continue;
    }
    if (!open) words.push_back({{}, cp.begin, cp.begin});
    words.back().chars += f;
    words.back().end = cp.end;
    open = true;
  }
  ids.push_back(cls_);
  tokens.push_back({"[CLS]", 0, 0});
  for (const Word& w : words) {
    std::vector<std::pair<int, std::string>> pieces;
    bool bad = w.chars.size() > 100;
    for (std::size_t start = 0; start < w.chars.size() && !bad;) {
      std::size_t end = w.chars.size();
      int found = -1;
      std::string piece;
      for (; end > start; --end) {
        std::string s = start > 0 ? "##" : "";
        for (std::size_t k = start; k < end; ++k) s += utf8_encode(w.chars[k]);
        if (const auto it = vocab_.find(s); it != vocab_.end()) {
          found = it->second;
          piece = s;
          break;
        }
      }
      if (found < 0) bad = true;
      else pieces.push_back({found, piece}), start = end;
    }
    if (bad) pieces = {{unk_, "[UNK]"}};
    for (const auto& [id, piece] : pieces) {
      ids.push_back(id);
      tokens.push_back({piece, w.begin, w.end});
    }
  }
  ids.push_back(sep_);
  tokens.push_back({"[SEP]", text.size(), text.size()});
  return true;
}

}  // namespace attnlab
