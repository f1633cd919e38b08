import Foundation
import KVStash
import KVStashCodec
import KVStashStore

/// Greedy continuations with the document's KV restored from disk through each codec,
/// against the same continuation computed from scratch: the share of prompts whose whole
/// answer is identical, and the mean share of positions that agree (top-1 agreement).
func agreementBench() throws {
    let prompts = Int(option("prompts", "8")) ?? 8
    let n = Int(option("tokens", "32")) ?? 32
    let questions = ["What is the document about?", "Which town is named first?",
                     "Summarize it in one sentence.", "Who built the bridge?"]
    let cases = (0..<prompts).map { i -> (doc: String, prompt: [Int]) in
        let doc = document(seed: 500 + UInt64(i), words: 300 + 40 * (i % 4))
        let q = PromptTemplate.chatSystem.query(document: doc, question: questions[i % questions.count], chat: chat)
        return (doc, tokenizer.encode(q))
    }
    let references = try cases.map { c in
        try prefixCache(nil, codec: .f32, ram: 0).generate(tokens: c.prompt, options: GenerationOptions(maxTokens: n)).tokens
    }
    struct Row: Codable { var codec: String; var identicalAnswers: Double; var positionAgreement: Double; var diskTokens: Int }
    var rows: [Row] = []
    for codec in [KVCodec.f32, .f16, .int8, .int4] {
        let dir = NSTemporaryDirectory() + "kvstash-agree-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try ChunkStore(path: dir)
        let pc = prefixCache(store, codec: codec, ram: 0)
        var identical = 0, agree = 0.0, disk = 0
        for (i, c) in cases.enumerated() {
            _ = try pc.precompute(tokens: tokenizer.encode(PromptTemplate.chatSystem.prefix(document: c.doc, chat: chat)),
                                  id: "d\(i)", name: "d\(i)")
            let r = try pc.generate(tokens: c.prompt, options: GenerationOptions(maxTokens: n))
            disk += r.sources.disk
            let ref = references[i]
            if r.tokens == ref { identical += 1 }
            let same = zip(r.tokens, ref).filter { $0 == $1 }.count
            agree += Double(same) / Double(max(ref.count, r.tokens.count, 1))
        }
        try store.close()
        rows.append(Row(codec: codec.name, identicalAnswers: Double(identical) / Double(prompts),
                        positionAgreement: agree / Double(prompts), diskTokens: disk))
        note("\(rows.last!)")
    }
    struct Out: Codable { var machine = Machine(); var prompts: Int; var tokens: Int; var rows: [Row] }
    try write(Out(prompts: prompts, tokens: n, rows: rows), "agreement")
    print("| codec | identical greedy answers | top-1 agreement by position | tokens from disk |")
    print("| --- | ---: | ---: | ---: |")
    for r in rows {
        print("| \(r.codec) | " + String(format: "%.0f%% | %.1f%% | %d |", r.identicalAnswers * 100, r.positionAgreement * 100, r.diskTokens))
    }
}
