// BERT's tokenizer (Devlin et al. 2019) from a model folder. With a tokenizer.json, that file's
// pipeline (bpe.hpp reads WordPiece models). With only vocab.txt (one token a line, id = line
// number) and tokenizer_config.json, the pipeline Hugging Face's BertTokenizerFast converts the
// slow tokenizer to: BertNormalizer (clean_text; handle_chinese_chars = tokenize_chinese_chars;
// strip_accents; lowercase = do_lower_case), BertPreTokenizer, WordPiece ("##" continuations,
// [UNK], 100 characters a word at most), [CLS] ... [SEP] around the text, and the special tokens
// of the vocabulary ([PAD], [UNK], [CLS], [SEP], [MASK]) kept whole where they are typed.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "tokenizers/bpe.hpp"

namespace attnlab {

struct BertVocabOptions {
  bool lower_case = true;                  // do_lower_case
  std::optional<bool> strip_accents;       // strip_accents (absent: as lower_case)
  bool chinese_chars = true;               // tokenize_chinese_chars
};

std::unique_ptr<ByteBpe> bert_vocab_tokenizer(const std::string& vocab_txt, const BertVocabOptions& options,
                                              std::string& error);
// dir/tokenizer.json when present, else dir/vocab.txt with dir/tokenizer_config.json's options
std::unique_ptr<ByteBpe> load_bert_tokenizer(const std::string& dir, std::string& error);

}  // namespace attnlab
