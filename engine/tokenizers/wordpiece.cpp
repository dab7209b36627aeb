#include "tokenizers/wordpiece.hpp"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/files.hpp"
#include "core/json_input.hpp"
#include "core/utf8.hpp"

namespace attnlab {

std::unique_ptr<ByteBpe> bert_vocab_tokenizer(const std::string& vocab_txt, const BertVocabOptions& o, std::string& error) {
  if (auto bad = utf8_first_invalid(vocab_txt)) {
    error = "not valid UTF-8 (byte " + std::to_string(*bad) + ")";
    return nullptr;
  }
  nlohmann::json vocab = nlohmann::json::object();
  std::istringstream in(vocab_txt);
  std::string line;
  long long id = 0;
  while (std::getline(in, line)) {  // the library trims each line's end; a repeated line takes the later id
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    vocab[line] = id++;
  }
  for (const char* t : {"[UNK]", "[CLS]", "[SEP]"})
    if (!vocab.contains(t)) {
      error = std::string("has no ") + t + " token";
      return nullptr;
    }
  nlohmann::json added = nlohmann::json::array();
  for (const char* t : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"})
    if (vocab.contains(t))
      added.push_back({{"id", vocab[t]}, {"content", t}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                       {"normalized", false}, {"special", true}});
  const nlohmann::json tj = {
      {"added_tokens", added},
      {"normalizer",
       {{"type", "BertNormalizer"},
        {"clean_text", true},
        {"handle_chinese_chars", o.chinese_chars},
        {"strip_accents", o.strip_accents ? nlohmann::json(*o.strip_accents) : nlohmann::json()},
        {"lowercase", o.lower_case}}},
      {"pre_tokenizer", {{"type", "BertPreTokenizer"}}},
      {"post_processor",
       {{"type", "BertProcessing"}, {"cls", {"[CLS]", vocab["[CLS]"]}}, {"sep", {"[SEP]", vocab["[SEP]"]}}}},
      {"model",
       {{"type", "WordPiece"},
        {"unk_token", "[UNK]"},
        {"continuing_subword_prefix", "##"},
        {"max_input_chars_per_word", 100},
        {"vocab", std::move(vocab)}}}};
  return ByteBpe::from_tokenizer_json(tj.dump(), error);
}

std::unique_ptr<ByteBpe> load_bert_tokenizer(const std::string& dir, std::string& error) {
  auto present = [](const std::string& p) {
    std::error_code ec;
    return std::filesystem::symlink_status(p, ec).type() != std::filesystem::file_type::not_found && !ec;
  };
  if (present(dir + "/tokenizer.json")) return ByteBpe::load(dir, error);
  const std::string path = dir + "/vocab.txt";
  if (!present(path)) {
    error = dir + ": no tokenizer.json and no vocab.txt (BERT's WordPiece vocabulary)";
    return nullptr;
  }
  std::string vocab;
  if (!read_file_limited(path, kMaxTokenizerFileBytes, vocab, error, "a tokenizer file")) return nullptr;
  BertVocabOptions o;
  const std::string cfg_path = dir + "/tokenizer_config.json";
  if (is_regular_file(cfg_path)) {
    std::string text;
    nlohmann::json c;
    if (!read_file_limited(cfg_path, kMaxConfigFileBytes, text, error, "a configuration file")) return nullptr;
    if (!parse_json_input(text, c, error)) {
      error = cfg_path + ": " + error;
      return nullptr;
    }
    if (!json_get(c, "do_lower_case", o.lower_case, error, cfg_path) ||
        !json_get(c, "tokenize_chinese_chars", o.chinese_chars, error, cfg_path))
      return nullptr;
    if (const auto sa = c.find("strip_accents"); sa != c.end() && !sa->is_null()) {
      if (!sa->is_boolean()) {
        error = cfg_path + ": 'strip_accents' must be true, false or null, not " + json_excerpt(*sa);
        return nullptr;
      }
      o.strip_accents = sa->get<bool>();
    }
  }
  auto w = bert_vocab_tokenizer(vocab, o, error);
  if (!w) error = path + ": " + error;
  return w;
}

}  // namespace attnlab
