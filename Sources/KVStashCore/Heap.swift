/// An element of a `Heap`: `a.before(b)` when `a` must come out first.
public protocol HeapOrdered {
    func before(_ other: Self) -> Bool
}

/// The binary heap (priority queue) of the code base: the tokenizers' merge loops and the
/// radix tree's LRU eviction. Inlinable, so it is specialized for each element type.
public struct Heap<Element: HeapOrdered> {
    @usableFromInline var items: [Element] = []

    @inlinable public init() {}

    @inlinable public var isEmpty: Bool { items.isEmpty }

    @inlinable public mutating func push(_ x: Element) {
        items.append(x)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            guard items[i].before(items[p]) else { break }
            items.swapAt(i, p)
            i = p
        }
    }

    @inlinable public mutating func pop() -> Element? {
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
