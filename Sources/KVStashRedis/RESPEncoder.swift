import NIOCore

/// NIO encoder: a command out as a RESP array of bulk strings. Small arguments are copied
/// into one header buffer; an argument of `largeArgument` bytes or more is written as its own
/// buffer (no copy), so a multi-megabyte value goes to the socket as it is.
final class RESPCommandEncoder: ChannelOutboundHandler {
    typealias OutboundIn = RESPCommand
    typealias OutboundOut = ByteBuffer

    static let largeArgument = 64 << 10

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let command = unwrapOutboundIn(data)
        var pieces: [ByteBuffer] = []
        var head = context.channel.allocator.buffer(capacity: 64)
        head.writeString("*\(command.arguments.count)\r\n")
        for argument in command.arguments {
            head.writeString("$\(argument.readableBytes)\r\n")
            if argument.readableBytes >= Self.largeArgument {
                pieces.append(head)
                pieces.append(argument)
                head = context.channel.allocator.buffer(capacity: 64)
                head.writeStaticString("\r\n")
            } else {
                var argument = argument
                head.writeBuffer(&argument)
                head.writeStaticString("\r\n")
            }
        }
        pieces.append(head)
        for piece in pieces.dropLast() {
            context.write(wrapOutboundOut(piece), promise: nil)
        }
        context.write(wrapOutboundOut(pieces[pieces.count - 1]), promise: promise)
    }
}
