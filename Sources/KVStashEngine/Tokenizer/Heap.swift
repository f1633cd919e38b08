/// An element of a `Heap`: `a.before(b)` when `a` must come out first.
protocol HeapOrdered {
    func before(_ other: Self) -> Bool
}

/// A binary heap (priority queue) for the merge loops of the tokenizers.
struct Heap<Element: HeapOrdered> {
    private var items: [Element] = []

    init() {}

    mutating func push(_ x: Element) {
        items.append(x)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            guard items[i].before(items[p]) else { break }
            items.swapAt(i, p)
            i = p
        }
    }

    mutating func pop() -> Element? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let a = 2 * i + 1, b = a + 1
                var m = i
                if a < items.count, items[a].before(items[m]) { m = a }
                if b < items.count, items[b].before(items[m]) { m = b }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}
