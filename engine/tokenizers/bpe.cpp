#include "tokenizers/bpe.hpp"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <limits>
#include <filesystem>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <queue>
#include <sstream>
#include <utf8proc.h>

#include "core/files.hpp"
#include "core/json_input.hpp"
#include "core/utf8.hpp"

namespace attnlab {

namespace {

constexpr std::size_t kMaxCachedPieces = 1 << 16;
// ids index a table of every token (pieces_): bounded so a hostile file cannot ask for 2^31
// entries (the largest real vocabularies have ~260k)
constexpr long long kMaxTokenIds = 1 << 24;
const std::string kMetaspace = "\xE2\x96\x81";  // U+2581, SentencePiece's space

// vocab.json / model.vocab: {token: id}, ids whole numbers from 0
bool read_vocab(const nlohmann::json& v, std::unordered_map<std::string, int>& vocab, std::string& error) {
  if (!v.is_object()) {
    error = "the vocabulary must be a JSON object of token -> id, not " + json_excerpt(v);
    return false;
  }
  vocab.reserve(v.size());
  for (const auto& [tok, id] : v.items()) {
    if (!id.is_number_integer() || id.get<long long>() < 0 || id.get<long long>() >= kMaxTokenIds) {
      error = "the vocabulary's id of '" + utf8_sanitize(tok.substr(0, 40)) + "' must be a whole number from 0 below 2^24, not " +
              json_excerpt(id);
      return false;
    }
    if (auto bad = utf8_first_invalid(tok)) {
      error = "a vocabulary token is not valid UTF-8 (byte " + std::to_string(*bad) + ")";
      return false;
    }
    vocab.emplace(tok, static_cast<int>(id.get<long long>()));
  }
  return true;
}

}  // namespace

bool ByteBpe::add_merge(const std::string& a, const std::string& b, int rank, std::string& error) {
  // with a continuation prefix, b's is dropped from the result ("a" + "##b" -> "ab"), as the library
  // does (it cuts the prefix's length off b, whatever b starts with)
  const std::string joined = a + b.substr(std::min(continuing_bpe_.size(), b.size()));
  const auto ia = vocab_.find(a), ib = vocab_.find(b), ir = vocab_.find(joined);
  const std::string missing = ia == vocab_.end() ? a : ib == vocab_.end() ? b : ir == vocab_.end() ? joined : "";
  if (ia == vocab_.end() || ib == vocab_.end() || ir == vocab_.end()) {
    error = "merge " + std::to_string(rank + 1) + " ('" + utf8_sanitize(a.substr(0, 40)) + "' + '" +
            utf8_sanitize(b.substr(0, 40)) + "'): '" + utf8_sanitize(missing.substr(0, 40)) + "' is not in the vocabulary";
    return false;
  }
  // a pair merged twice keeps the later rank, as Hugging Face's tokenizers builds its map
  merges_[static_cast<std::uint64_t>(ia->second) << 32 | static_cast<std::uint32_t>(ib->second)] = {rank, ir->second};
  return true;
}

bool ByteBpe::finish(std::string&) {
  // bytes_to_unicode (encoder.py): printable bytes map to themselves, the rest to 256 + k
  int extra = 0;
  for (int x = 0; x < 256; ++x) {
    const bool printable = (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255);
    const char32_t cp = printable ? static_cast<char32_t>(x) : static_cast<char32_t>(256 + extra++);
    byte_to_symbol_[x] = utf8_encode(cp);
    symbol_byte_[byte_to_symbol_[x]] = static_cast<unsigned char>(x);
    const auto it = vocab_.find(byte_to_symbol_[x]);
    byte_id_[x] = it == vocab_.end() ? -1 : it->second;
  }
  for (const auto& [tok, id] : vocab_) max_id_ = std::max(max_id_, id);
  pieces_.assign(max_id_ + 1, std::string());
  for (const auto& [tok, id] : vocab_)
    if (id >= 0) pieces_[id] = tok;
  return true;
}

std::string ByteBpe::token_text(int id) const {
  if (id < 0 || id >= static_cast<int>(pieces_.size())) return "";
  const std::string& p = pieces_[id];
  if (wordpiece_) return p;  // as the vocabulary writes it ("##ing")
  std::string out;
  if (metaspace_ || unigram_) {
    static const std::string kSpace = "\xe2\x96\x81";  // U+2581
    unsigned byte = 0;
    if (p.size() == 6 && p.starts_with("<0x") && p.back() == '>' && std::sscanf(p.c_str() + 3, "%2x", &byte) == 1)
      return std::string(1, static_cast<char>(byte));
    for (std::size_t i = 0; i < p.size();) {
      if (p.compare(i, kSpace.size(), kSpace) == 0) {
        out += ' ';
        i += kSpace.size();
      } else {
        out += p[i++];
      }
    }
    return out;
  }
  for (std::size_t i = 0; i < p.size();) {  // one UTF-8 character of the symbol alphabet per byte
    std::size_t len = 1;
    const auto c = static_cast<unsigned char>(p[i]);
    if (c >= 0xF0) len = 4;
    else if (c >= 0xE0) len = 3;
    else if (c >= 0xC0) len = 2;
    const auto it = symbol_byte_.find(p.substr(i, len));
    if (it != symbol_byte_.end()) out += static_cast<char>(it->second);
    else out += p.substr(i, len);  // an added token written as itself
    i += len;
  }
  return out;
}

std::unique_ptr<ByteBpe> ByteBpe::from_strings(const std::string& vocab_json, const std::string& merges_txt,
                                               std::string& error) {
  auto b = std::unique_ptr<ByteBpe>(new ByteBpe);
  b->pre_ = PreTokenizer::byte_level();  // vocab.json + merges.txt: GPT-2's
  nlohmann::json v;
  if (!parse_json_input(vocab_json, v, error)) {
    error = "vocab.json: " + error;
    return nullptr;
  }
  if (!read_vocab(v, b->vocab_, error)) {
    error = "vocab.json: " + error;
    return nullptr;
  }
  if (auto bad = utf8_first_invalid(merges_txt)) {
    error = "merges.txt is not valid UTF-8 (byte " + std::to_string(*bad) + ")";
    return nullptr;
  }
  std::istringstream in(merges_txt);
  std::string line;
  int rank = 0, line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (line_no == 1 && line.starts_with("#version"))) continue;
    const auto sp = line.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 == line.size() || line.find(' ', sp + 1) != std::string::npos) {
      error = "merges.txt line " + std::to_string(line_no) + ": '" + utf8_sanitize(line.substr(0, 40)) +
              "' is not two symbols separated by one space";
      return nullptr;
    }
    if (!b->add_merge(line.substr(0, sp), line.substr(sp + 1), rank++, error)) {
      error = "merges.txt line " + std::to_string(line_no) + ": " + error;
      return nullptr;
    }
  }
  b->finish(error);
  return b;
}

std::unique_ptr<ByteBpe> ByteBpe::from_tokenizer_json(const std::string& text, std::string& error) {
  nlohmann::json j;
  if (!parse_json_input(text, j, error)) return nullptr;
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) {
    error = "'model' must be an object with the tokenizer's vocab and merges";
    return nullptr;
  }
  const auto& model = j["model"];
  std::string type = "BPE";
  if (!json_get(model, "type", type, error, "model")) return nullptr;
  if (type != "BPE" && type != "WordPiece" && type != "Unigram" && type != "WordLevel") {
    error = "model type '" + utf8_sanitize(type) + "' is not implemented (BPE, WordPiece, Unigram, WordLevel)";
    return nullptr;
  }
  auto b = std::unique_ptr<ByteBpe>(new ByteBpe);
  if (type == "Unigram") {
    if (!b->read_unigram(model, error)) return nullptr;
  } else if (!model.contains("vocab") || !read_vocab(model["vocab"], b->vocab_, error)) {
    if (error.empty()) error = "model.vocab is missing";
    error = "model.vocab: " + error;
    return nullptr;
  }
  std::string unk;
  if (!b->unigram_ && !json_get(model, "unk_token", unk, error, "model")) return nullptr;
  if (!unk.empty()) {
    const auto it = b->vocab_.find(unk);
    if (it == b->vocab_.end()) {
      error = "model.unk_token '" + utf8_sanitize(unk) + "' is not in the vocabulary";
      return nullptr;
    }
    b->unk_ = it->second;
  }
  if (type == "Unigram") {
    // read above
  } else if (type == "WordLevel") {
    b->wordlevel_ = true;  // each piece is one vocabulary entry, or the unknown token
  } else if (type == "WordPiece") {
    b->wordpiece_ = true;
    int max_chars = 100;
    if (!json_get(model, "continuing_subword_prefix", b->continuing_, error, "model") ||
        !json_get(model, "max_input_chars_per_word", max_chars, 1, 1 << 20, error, "model"))
      return nullptr;
    b->max_word_chars_ = static_cast<std::size_t>(max_chars);
    if (b->unk_ < 0) {
      error = "model (WordPiece): unk_token is missing";
      return nullptr;
    }
  } else {
    if (!json_get(model, "continuing_subword_prefix", b->continuing_bpe_, error, "model") ||
        !json_get(model, "end_of_word_suffix", b->word_suffix_, error, "model"))
      return nullptr;
    const auto merges = model.find("merges");
    if (merges == model.end() || !merges->is_array()) {
      error = "model.merges must be a list of merges";
      return nullptr;
    }
    int rank = 0;
    for (const auto& m : *merges) {
      std::string a, c;
      if (m.is_string()) {  // "a b"
        const std::string line = m.get<std::string>();
        const auto sp = line.find(' ');
        if (sp == std::string::npos || sp == 0 || sp + 1 == line.size() || line.find(' ', sp + 1) != std::string::npos) {
          error = "model.merges[" + std::to_string(rank) + "]: " + json_excerpt(m) + " is not two symbols separated by one space";
          return nullptr;
        }
        a = line.substr(0, sp), c = line.substr(sp + 1);
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string() && !m[0].get_ref<const std::string&>().empty() &&
                 !m[1].get_ref<const std::string&>().empty()) {  // ["a", "b"] (tokenizers >= 0.20)
        a = m[0].get<std::string>(), c = m[1].get<std::string>();
      } else {
        error = "model.merges[" + std::to_string(rank) + "] must be \"a b\" or [\"a\", \"b\"], not " + json_excerpt(m);
        return nullptr;
      }
      if (!b->add_merge(a, c, rank++, error)) {
        error = "model.merges: " + error;
        return nullptr;
      }
    }
    if (!json_get(model, "byte_fallback", b->byte_fallback_, error, "model") ||
        !json_get(model, "fuse_unk", b->fuse_unk_, error, "model") ||
        (model.contains("ignore_merges") && !json_get(model, "ignore_merges", b->ignore_merges_, error, "model")))
      return nullptr;
    if (const auto d = model.find("dropout"); d != model.end() && !d->is_null() && !(d->is_number() && d->get<double>() == 0.0)) {
      error = "model (BPE): dropout makes tokenization random; only null or 0 is read";
      return nullptr;
    }
  }
  b->norm_ = Normalizer::from_json(j.value("normalizer", nlohmann::json()), error);
  if (!b->norm_) return nullptr;
  b->pre_ = PreTokenizer::from_json(j.value("pre_tokenizer", nlohmann::json()), error);
  if (!b->pre_) return nullptr;
  // BPE on byte symbols when the pre-tokenizer has a ByteLevel step, else on code points
  b->metaspace_ = !b->wordpiece_ && !b->unigram_ && !b->wordlevel_ && !b->pre_->is_byte_level();
  if ((b->wordpiece_ || b->unigram_ || b->wordlevel_) && b->pre_->is_byte_level()) {
    error = "a " + type + " model with a ByteLevel pre-tokenizer is not supported";
    return nullptr;
  }
  if (!b->read_specials(j, error)) return nullptr;
  b->finish(error);
  return b;
}

bool ByteBpe::read_unigram(const nlohmann::json& model, std::string& error) {
  unigram_ = true;
  const auto v = model.find("vocab");
  if (v == model.end() || !v->is_array() || v->empty()) {
    error = "model.vocab (Unigram) must be a non-empty list of [piece, score]";
    return false;
  }
  if (v->size() >= static_cast<std::size_t>(kMaxTokenIds)) {
    error = "model.vocab: more token ids than 2^24";
    return false;
  }
  min_score_ = std::numeric_limits<double>::infinity();
  trie_id_.push_back(-1);
  for (std::size_t id = 0; id < v->size(); ++id) {
    const auto& e = (*v)[id];
    if (!e.is_array() || e.size() != 2 || !e[0].is_string() || !e[1].is_number() || !std::isfinite(e[1].get<double>())) {
      error = "model.vocab[" + std::to_string(id) + "] must be [piece, finite score], not " + json_excerpt(e);
      return false;
    }
    const std::string piece = e[0].get<std::string>();
    if (auto bad = utf8_first_invalid(piece)) {
      error = "model.vocab[" + std::to_string(id) + "] is not valid UTF-8";
      return false;
    }
    vocab_[piece] = static_cast<int>(id);  // a repeated piece takes the later id, as the library
    scores_.push_back(e[1].get<double>());
    min_score_ = std::min(min_score_, scores_.back());
    int node = 0;
    for (unsigned char c : piece) {
      const std::uint64_t key = static_cast<std::uint64_t>(node) << 8 | c;
      const auto it = trie_.find(key);
      if (it != trie_.end()) {
        node = it->second;
      } else {
        trie_.emplace(key, static_cast<int>(trie_id_.size()));
        node = static_cast<int>(trie_id_.size());
        trie_id_.push_back(-1);
      }
    }
    if (!piece.empty()) trie_id_[node] = static_cast<int>(id);
  }
  for (auto& node_id : trie_id_)  // the id a piece's text maps to (the later of repeated pieces)
    if (node_id >= 0) {
      const std::string& p = (*v)[static_cast<std::size_t>(node_id)][0].get_ref<const std::string&>();
      node_id = vocab_[p];
    }
  if (const auto u = model.find("unk_id"); u != model.end() && !u->is_null()) {
    if (!u->is_number_integer() || u->get<long long>() < 0 || u->get<long long>() >= static_cast<long long>(v->size())) {
      error = "model.unk_id must be the index of a piece, not " + json_excerpt(*u);
      return false;
    }
    unk_ = u->get<int>();
  }
  return json_get(model, "byte_fallback", byte_fallback_, error, "model");
}

bool ByteBpe::read_specials(const nlohmann::json& j, std::string& error) {
  if (const auto at = j.find("added_tokens"); at != j.end() && !at->is_null()) {
    if (!at->is_array()) {
      error = "added_tokens must be a list, not " + json_excerpt(*at);
      return false;
    }
    int next_id = 0;
    for (const auto& [tok, id] : vocab_) next_id = std::max(next_id, id + 1);
    for (const auto& t : *at) {
      Added a{};
      if (!t.is_object() || !t.contains("content") || !t["content"].is_string() || !t.contains("id") ||
          !t["id"].is_number_integer() || t["id"].get<long long>() < 0 || t["id"].get<long long>() >= kMaxTokenIds) {
        error = "added_tokens: each must have a string 'content' and a whole-number 'id', not " + json_excerpt(t);
        return false;
      }
      a.content = t["content"].get<std::string>();
      a.id = t["id"].get<int>();
      // Hugging Face's AddedVocabulary: a token the model's vocabulary has keeps that id; any other
      // takes the next id after the vocabulary and the tokens added before it (the file's id is
      // then not used: the library's own rule, seen in tests/golden/tokenizers/added_flags.json)
      if (const auto in = vocab_.find(a.content); in != vocab_.end()) a.id = in->second;
      else a.id = next_id;
      if (a.id >= kMaxTokenIds) {
        error = "added_tokens: more token ids than 2^24";
        return false;
      }
      next_id = std::max(next_id, a.id + 1);
      bool special = false, normalized = true;
      if (!json_get(t, "lstrip", a.lstrip, error, "added_tokens") || !json_get(t, "rstrip", a.rstrip, error, "added_tokens") ||
          !json_get(t, "single_word", a.single_word, error, "added_tokens") ||
          !json_get(t, "special", special, error, "added_tokens"))
        return false;
      normalized = !special;  // the library's default
      if (!json_get(t, "normalized", normalized, error, "added_tokens")) return false;
      if (a.content.empty() || utf8_first_invalid(a.content)) continue;
      vocab_.emplace(a.content, a.id);
      if (normalized && norm_) a.content = norm_->apply(a.content);  // matched in the normalized text
      if (a.content.empty()) continue;
      AddedSet& set = normalized ? normalized_added_ : raw_added_;
      set.by_byte[static_cast<unsigned char>(a.content[0])].push_back(static_cast<int>(set.tokens.size()));
      set.tokens.push_back(std::move(a));
    }
  }
  const auto pp = j.find("post_processor");
  if (pp == j.end() || pp->is_null()) return true;
  if (!pp->is_object() || !pp->contains("type") || !(*pp)["type"].is_string()) {
    error = "post_processor must be an object with a type, not " + json_excerpt(*pp);
    return false;
  }
  const std::string type = (*pp)["type"].get<std::string>();
  auto special = [&](const nlohmann::json& v, Special& s) {  // ["[CLS]", 101]
    if (!v.is_array() || v.size() != 2 || !v[0].is_string() || !v[1].is_number_integer()) return false;
    s = {v[0].get<std::string>(), v[1].get<int>()};
    return true;
  };
  if (type == "ByteLevel") return true;  // offsets only
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    Special cls, sep;
    if (!pp->contains("cls") || !pp->contains("sep") || !special((*pp)["cls"], cls) || !special((*pp)["sep"], sep)) {
      error = "post_processor " + type + ": 'cls' and 'sep' must be [token, id]";
      return false;
    }
    prefix_ = {cls};
    suffix_ = {sep};
    return true;
  }
  if (type == "TemplateProcessing") {
    const auto single = pp->find("single");
    if (single == pp->end() || !single->is_array()) {
      error = "post_processor TemplateProcessing: 'single' must be a list";
      return false;
    }
    const auto specials = pp->find("special_tokens");
    bool seen_sequence = false;
    for (const auto& piece : *single) {
      if (piece.contains("Sequence")) {
        seen_sequence = true;
        continue;
      }
      const auto st = piece.find("SpecialToken");
      if (st == piece.end() || !st->is_object() || !st->contains("id") || !(*st)["id"].is_string()) {
        error = "post_processor TemplateProcessing: a piece of 'single' is neither Sequence nor SpecialToken: " + json_excerpt(piece);
        return false;
      }
      const std::string name = (*st)["id"].get<std::string>();
      const nlohmann::json* entry = specials != pp->end() && specials->is_object() && specials->contains(name) ? &(*specials)[name] : nullptr;
      if (!entry || !entry->contains("ids") || !(*entry)["ids"].is_array() || !entry->contains("tokens") ||
          !(*entry)["tokens"].is_array() || (*entry)["ids"].size() != (*entry)["tokens"].size()) {
        error = "post_processor TemplateProcessing: special_tokens has no ids and tokens for '" + utf8_sanitize(name) + "'";
        return false;
      }
      for (std::size_t k = 0; k < (*entry)["ids"].size(); ++k) {
        const auto& id = (*entry)["ids"][k];
        const auto& tok = (*entry)["tokens"][k];
        if (!id.is_number_integer() || id.get<long long>() < 0 || id.get<long long>() >= kMaxTokenIds || !tok.is_string()) {
          error = "post_processor TemplateProcessing: special_tokens '" + utf8_sanitize(name) + "' has a bad id or token";
          return false;
        }
        (seen_sequence ? suffix_ : prefix_).push_back({tok.get<std::string>(), id.get<int>()});
      }
    }
    return true;
  }
  error = "post_processor type '" + utf8_sanitize(type) + "' is not implemented";
  return false;
}

std::unique_ptr<ByteBpe> ByteBpe::load(const std::string& dir, std::string& error) {
  const std::string vocab_path = dir + "/vocab.json", merges_path = dir + "/merges.txt", tj_path = dir + "/tokenizer.json";
  // present in any form (a FIFO, a link to a device): read_file_limited says what is wrong with it
  auto present = [](const std::string& p) {
    std::error_code ec;
    return std::filesystem::symlink_status(p, ec).type() != std::filesystem::file_type::not_found && !ec;
  };
  std::string vocab, merges, tj;
  if (present(vocab_path) || present(merges_path)) {
    if (!read_file_limited(vocab_path, kMaxTokenizerFileBytes, vocab, error, "a tokenizer file") ||
        !read_file_limited(merges_path, kMaxTokenizerFileBytes, merges, error, "a tokenizer file"))
      return nullptr;
    auto b = from_strings(vocab, merges, error);
    if (!b) error = dir + "/" + error;
    return b;
  }
  if (!present(tj_path)) {
    error = dir + ": no tokenizer (vocab.json + merges.txt, or tokenizer.json)";
    return nullptr;
  }
  if (!read_file_limited(tj_path, kMaxTokenizerFileBytes, tj, error, "a tokenizer file")) return nullptr;
  auto b = from_tokenizer_json(tj, error);
  if (!b) error = tj_path + ": " + error;
  return b;
}

void ByteBpe::merge(std::vector<Piece>& word) const {
  const int n = static_cast<int>(word.size());
  if (n < 2 || merges_.empty()) return;
  std::vector<int> prev(n), next(n);
  for (int i = 0; i < n; ++i) prev[i] = i - 1, next[i] = i + 1 < n ? i + 1 : -1;
  struct Candidate {
    int rank, left, right;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  auto consider = [&](int left) {
    const int right = left >= 0 ? next[left] : -1;
    if (left < 0 || right < 0 || word[left].id < 0 || word[right].id < 0) return;
    const auto it = merges_.find(static_cast<std::uint64_t>(word[left].id) << 32 | static_cast<std::uint32_t>(word[right].id));
    if (it != merges_.end()) heap.push({it->second.rank, left, right});
  };
  for (int i = 0; i + 1 < n; ++i) consider(i);
  std::vector<char> alive(n, 1);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    // stale: one side merged away, or into another symbol, since this pair was pushed
    if (!alive[c.left] || !alive[c.right] || next[c.left] != c.right) continue;
    const auto it = merges_.find(static_cast<std::uint64_t>(word[c.left].id) << 32 | static_cast<std::uint32_t>(word[c.right].id));
    if (it == merges_.end() || it->second.rank != c.rank) continue;
    word[c.left].id = it->second.result;
    word[c.left].bytes += word[c.right].bytes;
    alive[c.right] = 0;
    next[c.left] = next[c.right];
    if (next[c.left] >= 0) prev[next[c.left]] = c.left;
    consider(prev[c.left]);
    consider(c.left);
  }
  std::size_t out = 0;
  for (int i = 0; i < n; ++i)
    if (alive[i]) word[out++] = word[i];
  word.resize(out);
}

bool ByteBpe::encode_chars(const std::string& piece, std::vector<Sub>& out, std::string&) const {
  // every code point a symbol (the library's BPE::merge_word); one outside the vocabulary becomes
  // its UTF-8 bytes as <0xNN> symbols (byte_fallback, when all of them exist), else the unknown
  // token (consecutive ones fused into one when fuse_unk), else nothing, as in the library
  if (ignore_merges_)
    if (const auto it = vocab_.find(piece); it != vocab_.end()) {
      out.push_back({it->second, 0, piece.size(), {}});
      return true;
    }
  constexpr int kByteSymbol = -2;  // Piece::first of a <0xNN> symbol: its text is the token's name
  std::vector<Piece> word;
  word.reserve(piece.size());
  std::vector<std::size_t> at;  // each symbol's first byte in the piece (dropped characters leave gaps)
  at.reserve(piece.size());
  bool unknown_before = false;
  const auto cps = utf8_decode(piece);
  for (std::size_t c = 0; c < cps.size(); ++c) {
    const CodePoint& cp = cps[c];
    const std::size_t len = cp.end - cp.begin;
    std::string sym = piece.substr(cp.begin, len);  // with the prefix after the first, the suffix on the last
    if (c > 0 && !continuing_bpe_.empty()) sym = continuing_bpe_ + sym;
    if (c + 1 == cps.size()) sym += word_suffix_;
    const auto it = vocab_.find(sym);
    if (it != vocab_.end()) {
      word.push_back({it->second, len, 0});
      at.push_back(cp.begin);
      unknown_before = false;
      continue;
    }
    if (byte_fallback_) {
      // the library falls back on the bytes of the symbol as looked up (prefix and suffix included)
      std::vector<int> byte_ids;
      bool all = true;
      for (std::size_t k = 0; k < sym.size() && all; ++k) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", static_cast<unsigned char>(sym[k]));
        const auto bt = vocab_.find(name);
        all = bt != vocab_.end();
        if (all) byte_ids.push_back(bt->second);
      }
      if (all) {
        const bool plain = sym.size() == len;  // each byte token covers its byte; else the whole character
        for (std::size_t k = 0; k < sym.size(); ++k)
          word.push_back({byte_ids[k], plain ? 1 : len, kByteSymbol}), at.push_back(plain ? cp.begin + k : cp.begin);
        unknown_before = false;
        continue;
      }
    }
    if (unk_ < 0) continue;  // no unknown token: the character is dropped
    if (fuse_unk_ && unknown_before) {
      word.back().bytes = cp.end - at.back();
      continue;
    }
    word.push_back({unk_, len, 0});
    at.push_back(cp.begin);
    unknown_before = true;
  }
  // merge() keeps each surviving symbol's `first` (its leftmost initial symbol); its last is the
  // one before the next survivor's first
  std::vector<std::size_t> len(word.size());
  std::vector<char> byte_symbol(word.size());
  for (std::size_t k = 0; k < word.size(); ++k) {
    byte_symbol[k] = word[k].first == kByteSymbol;
    word[k].first = static_cast<int>(k);
    len[k] = word[k].bytes;
  }
  const std::size_t n = word.size();
  merge(word);
  for (std::size_t i = 0; i < word.size(); ++i) {
    const auto k = static_cast<std::size_t>(word[i].first);
    const std::size_t last = i + 1 < word.size() ? static_cast<std::size_t>(word[i + 1].first) - 1 : n - 1;
    out.push_back({word[i].id, at[k], at[last] + len[last], byte_symbol[k] && k == last ? pieces_[word[i].id] : std::string()});
  }
  return true;
}

void ByteBpe::encode_wordpiece(const std::string& piece, std::vector<Sub>& out) const {
  // greedy longest match first; a word that cannot be split, or is longer than
  // max_input_chars_per_word, is the unknown token
  const auto cps = utf8_decode(piece);
  const std::size_t first = out.size();
  if (cps.size() <= max_word_chars_) {
    std::size_t i = 0;
    while (i < cps.size()) {
      int id = -1;
      std::size_t j = cps.size();
      for (; j > i; --j) {
        std::string sub = piece.substr(cps[i].begin, cps[j - 1].end - cps[i].begin);
        if (i > 0) sub = continuing_ + sub;
        if (const auto it = vocab_.find(sub); it != vocab_.end()) {
          id = it->second;
          break;
        }
      }
      if (id < 0) break;
      out.push_back({id, cps[i].begin, cps[j - 1].end, pieces_[id]});
      i = j;
    }
    if (i == cps.size()) return;
  }
  out.resize(first);
  out.push_back({unk_, 0, piece.size(), pieces_[unk_]});
}

bool ByteBpe::encode_unigram(const std::string& piece, std::vector<Sub>& out, std::string& error) const {
  // best[e]: the highest-scoring segmentation of piece[0, e): its score, where its last token
  // starts (-1: none yet) and that token's id; ties keep the first found (shorter pieces first)
  const std::size_t n = piece.size();
  if (n == 0) return true;
  struct Best {
    double score = 0;
    long start = -1;
    int id = -1;
  };
  std::vector<Best> best(n + 1);
  const double unk_score = min_score_ - 10.0;
  auto offer = [&](std::size_t e, std::size_t s, double score, int id) {
    if (best[e].start < 0 || score > best[e].score) best[e] = {score, static_cast<long>(s), id};
  };
  for (std::size_t s = 0; s < n;) {
    std::size_t mblen = 1;
    while (s + mblen < n && (static_cast<unsigned char>(piece[s + mblen]) & 0xC0) == 0x80) ++mblen;
    const double base = s == 0 ? 0.0 : best[s].score;
    bool single = false;
    int node = 0;
    for (std::size_t e = s; e < n; ++e) {
      const auto it = trie_.find(static_cast<std::uint64_t>(node) << 8 | static_cast<unsigned char>(piece[e]));
      if (it == trie_.end()) break;
      node = it->second;
      if (const int id = trie_id_[node]; id >= 0) {
        offer(e + 1, s, base + scores_[static_cast<std::size_t>(id)], id);
        if (e + 1 - s == mblen) single = true;
      }
    }
    if (!single) {
      if (unk_ < 0) {
        error = "'" + piece.substr(s, mblen) + "' is in no piece of the vocabulary and the model has no unk_id";
        return false;
      }
      offer(s + mblen, s, base + unk_score, unk_);
    }
    s += mblen;
  }
  // back from the end; consecutive unknown tokens become one string (the library's fuse_unk)
  std::vector<std::pair<std::size_t, std::size_t>> spans;
  for (std::size_t e = n; e > 0;) {
    const auto s = static_cast<std::size_t>(best[e].start);
    if (best[e].id == unk_ && !spans.empty() && best[spans.back().second].id == unk_ && spans.back().first == e)
      spans.back().first = s;
    else
      spans.push_back({s, e});
    e = s;
  }
  for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
    const auto [s, e] = *it;
    const std::string text = piece.substr(s, e - s);
    if (const auto v = vocab_.find(text); v != vocab_.end()) {
      out.push_back({v->second, s, e, {}});
      continue;
    }
    if (byte_fallback_) {
      std::vector<Sub> bytes;
      for (std::size_t k = s; k < e; ++k) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", static_cast<unsigned char>(piece[k]));
        const auto bt = vocab_.find(name);
        if (bt == vocab_.end()) break;
        bytes.push_back({bt->second, s, e, name});
      }
      if (bytes.size() == e - s) {
        out.insert(out.end(), bytes.begin(), bytes.end());
        continue;
      }
    }
    out.push_back({unk_, s, e, {}});
  }
  return true;
}

bool ByteBpe::encode_piece(const std::string& piece, std::vector<Sub>& out, std::string& error) const {
  if (wordlevel_) {
    const auto it = vocab_.find(piece);
    if (it == vocab_.end() && unk_ < 0) {
      error = "'" + utf8_sanitize(piece) + "' is not in the vocabulary (WordLevel, no unk_token)";
      return false;
    }
    out.push_back({it == vocab_.end() ? unk_ : it->second, 0, piece.size(), {}});
    return true;
  }
  if (wordpiece_) {
    encode_wordpiece(piece, out);
    return true;
  }
  if (unigram_) return encode_unigram(piece, out, error);
  return metaspace_ ? encode_chars(piece, out, error) : encode_bytes(piece, out, error);
}

namespace {
// Unicode's word characters as Rust's regex \w has them (what the library's single_word checks):
// letters, marks, decimal digits, letter numbers, connector punctuation, ZWNJ/ZWJ and the
// circled and squared Latin letters (symbols with the Alphabetic property)
bool is_word_char(char32_t c) {
  if (c < 0x80) return std::isalnum(static_cast<int>(c)) || c == '_';
  if (c == 0x200C || c == 0x200D || (c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F189)) return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC: return true;
    default: return false;
  }
}
// the code point ending just before byte `at` / starting at byte `at` of valid UTF-8 t
char32_t cp_before(const std::string& t, std::size_t at, std::size_t* len = nullptr) {
  std::size_t b = at;
  do --b;
  while (b > 0 && (static_cast<unsigned char>(t[b]) & 0xC0) == 0x80);
  if (len) *len = at - b;
  return utf8_decode(std::string_view(t).substr(b, at - b)).front().value;
}
char32_t cp_at(const std::string& t, std::size_t at, std::size_t* len = nullptr) {
  std::size_t e = at + 1;
  while (e < t.size() && (static_cast<unsigned char>(t[e]) & 0xC0) == 0x80) ++e;
  if (len) *len = e - at;
  return utf8_decode(std::string_view(t).substr(at, e - at)).front().value;
}
}  // namespace

bool ByteBpe::next_added(const AddedSet& set, const std::string& t, std::size_t from, std::size_t pos, AddedMatch& m) {
  if (set.tokens.empty()) return false;
  for (; pos < t.size(); ++pos) {
    const Added* best = nullptr;
    for (int k : set.by_byte[static_cast<unsigned char>(t[pos])]) {
      const Added& a = set.tokens[k];
      if (t.compare(pos, a.content.size(), a.content) != 0) continue;
      const std::size_t end = pos + a.content.size();
      if (a.single_word && ((pos > 0 && is_word_char(cp_before(t, pos))) || (end < t.size() && is_word_char(cp_at(t, end)))))
        continue;
      if (!best || a.content.size() > best->content.size()) best = &a;
    }
    if (!best) continue;
    std::size_t b0 = pos, b1 = pos + best->content.size(), len = 0;
    if (best->lstrip)
      while (b0 > from && is_unicode_whitespace(cp_before(t, b0, &len))) b0 -= len;
    if (best->rstrip)
      while (b1 < t.size() && is_unicode_whitespace(cp_at(t, b1, &len))) b1 += len;
    m = {best, pos, b0, b1};
    return true;
  }
  return false;
}

bool ByteBpe::encode(const std::string& text, std::vector<int>& ids, std::vector<Token>& tokens, std::string& error) const {
  ids.clear();
  tokens.clear();
  if (auto bad = utf8_first_invalid(text)) {
    error = "the text is not valid UTF-8 (byte " + std::to_string(*bad) + ")";
    return false;
  }
  for (const Special& s : prefix_) ids.push_back(s.id), tokens.push_back({s.text, 0, 0});
  std::size_t from = 0;
  AddedMatch m{};
  while (next_added(raw_added_, text, from, from, m)) {
    if (m.b0 > from && !encode_segment(text, from, m.b0, ids, tokens, error)) return false;
    ids.push_back(m.token->id);
    tokens.push_back({text.substr(m.b0, m.b1 - m.b0), m.b0, m.b1});
    from = m.b1;
  }
  if (from < text.size() && !encode_segment(text, from, text.size(), ids, tokens, error)) return false;
  const std::size_t n = text.size();
  for (const Special& s : suffix_) ids.push_back(s.id), tokens.push_back({s.text, n, n});
  return true;
}

bool ByteBpe::encode_segment(const std::string& source, std::size_t b, std::size_t e, std::vector<int>& ids,
                             std::vector<Token>& tokens, std::string& error) const {
  Normalized n = Normalized::of(source.substr(b, e - b), b);
  if (norm_ && !norm_->apply(n, error)) return false;
  auto part = [&](std::size_t p0, std::size_t p1) {
    Normalized s;
    s.text = n.text.substr(p0, p1 - p0);
    s.begin.assign(n.begin.begin() + static_cast<std::ptrdiff_t>(p0), n.begin.begin() + static_cast<std::ptrdiff_t>(p1));
    s.end.assign(n.end.begin() + static_cast<std::ptrdiff_t>(p0), n.end.begin() + static_cast<std::ptrdiff_t>(p1));
    return s;
  };
  std::size_t from = 0;
  AddedMatch m{};
  while (next_added(normalized_added_, n.text, from, from, m)) {
    if (m.b0 > from && !encode_stretch(source, part(from, m.b0), ids, tokens, error)) return false;
    const auto [s0, s1] = n.source_span(m.b0, m.b1);
    ids.push_back(m.token->id);
    tokens.push_back({source.substr(s0, s1 - s0), s0, s1});
    from = m.b1;
  }
  if (from < n.text.size()) return encode_stretch(source, from == 0 ? std::move(n) : part(from, n.text.size()), ids, tokens, error);
  return true;
}

bool ByteBpe::encode_stretch(const std::string& source, Normalized s, std::vector<int>& ids, std::vector<Token>& tokens,
                             std::string& error) const {
  std::vector<std::pair<std::size_t, std::size_t>> pieces, outer;
  std::vector<Sub> subs;
  auto tokenize = [&](const Normalized& t) {  // the model on each piece of t from the remaining steps
    if (!pre_->split(t.text, pieces, error, pre_->rewrites() ? PreTokenizer::Steps::after_rewrite : PreTokenizer::Steps::all))
      return false;
    for (const auto& [b0, b1] : pieces) {
      subs.clear();
      if (!encode_piece(t.text.substr(b0, b1 - b0), subs, error)) return false;
      for (Sub& u : subs) {
        const auto [s0, s1] = t.source_span(b0 + u.b, b0 + u.e);
        ids.push_back(u.id);
        tokens.push_back({u.text.empty() ? utf8_sanitize(source.substr(s0, s1 - s0)) : std::move(u.text), s0, s1});
      }
    }
    return true;
  };
  if (!pre_->rewrites()) return tokenize(s);
  // Metaspace / ByteLevel(add_prefix_space), on each piece of the steps before it: spaces
  // replaced, a prefix put in front
  if (!pre_->split(s.text, outer, error, PreTokenizer::Steps::before_rewrite)) return false;
  const PreTokenizer::Rewrite& rw = pre_->rewrite();
  using When = PreTokenizer::Rewrite::When;
  for (const auto& [p0, p1] : outer) {
    Normalized r;
    r.text.reserve(p1 - p0 + p1 / 8 + 8);
    for (std::size_t k = p0; k < p1; ++k) {
      const bool space = s.text[k] == ' ' && !rw.space.empty();
      const std::size_t count = space ? rw.space.size() : 1;
      if (space) r.text += rw.space;
      else r.text += s.text[k];
      r.begin.insert(r.begin.end(), count, s.begin[k]);
      r.end.insert(r.end.end(), count, s.end[k]);
    }
    if (!r.text.empty() && !rw.prefix.empty() && (rw.when == When::always || (rw.when == When::first && r.begin[0] == 0)) &&
        !r.text.starts_with(rw.prefix)) {
      const std::uint32_t at = r.begin[0];
      r.text.insert(0, rw.prefix);
      r.begin.insert(r.begin.begin(), rw.prefix.size(), at);
      r.end.insert(r.end.begin(), rw.prefix.size(), at);
    }
    if (!tokenize(r)) return false;
  }
  return true;
}

bool ByteBpe::encode_bytes(const std::string& piece, std::vector<Sub>& out, std::string& error) const {
  std::vector<Piece> word;
  {
    std::lock_guard lock(cache_mu_);
    if (const auto it = cache_.find(piece); it != cache_.end()) word = it->second;
  }
  if (word.empty() && ignore_merges_) {  // the whole piece a vocabulary entry: that token
    std::string sym;
    for (unsigned char c : piece) sym += byte_to_symbol_[c];
    if (const auto it = vocab_.find(sym); it != vocab_.end()) word.push_back({it->second, piece.size()});
  }
  if (word.empty()) {
    if (continuing_bpe_.empty() && word_suffix_.empty()) {
      for (unsigned char c : piece) word.push_back({byte_id_[c], 1});
    } else {  // the prefix after the first symbol, the suffix on the last
      for (std::size_t k = 0; k < piece.size(); ++k) {
        std::string sym = (k > 0 ? continuing_bpe_ : std::string()) + byte_to_symbol_[static_cast<unsigned char>(piece[k])];
        if (k + 1 == piece.size()) sym += word_suffix_;
        const auto it = vocab_.find(sym);
        word.push_back({it == vocab_.end() ? -1 : it->second, 1});
      }
    }
    merge(word);
    std::lock_guard lock(cache_mu_);
    if (cache_.size() >= kMaxCachedPieces) cache_.clear();
    cache_.emplace(piece, word);
  }
  std::size_t pos = 0;
  for (const Piece& p : word) {
    if (p.id < 0) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "%02X", static_cast<unsigned char>(piece[pos]));
      error = "the byte 0x" + std::string(hex) + " ('" + byte_to_symbol_[static_cast<unsigned char>(piece[pos])] +
              "') is not in the vocabulary";
      return false;
    }
    out.push_back({p.id, pos, pos + p.bytes, {}});
    pos += p.bytes;
  }
  return true;
}

}  // namespace attnlab
