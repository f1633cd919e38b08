/// Real-KV measurements need the engine and tokenizer (merged from main later).
func runReal(_ options: Options) throws {
    fatalError("codec-bench real: needs KVStashEngine's LlamaModel and Tokenizer")
}
