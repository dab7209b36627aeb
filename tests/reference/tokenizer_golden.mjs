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
for (const name of ['gpt2', 'llama2', 'llama3']) {
  const file = path.join(here, 'node_modules', '@lenml', 'tokenizer-' + name, 'models', 'tokenizer.json');
  const tok = Tokenizer.fromFile(file);
  const ids = [];
  for (const t of texts) ids.push(Array.from((await tok.encode(t, null, { addSpecialTokens: true })).getIds()));
  fs.writeFileSync(path.join(golden, name + '.json'),
                   JSON.stringify({ tokenizer: '@lenml/tokenizer-' + name + '/models/tokenizer.json', ids }) + '\n');
  console.log(name, texts.length, 'texts');
}
