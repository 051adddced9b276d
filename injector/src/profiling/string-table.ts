/**
 * pprof-format's string table, without what made every profile's strings outlive young-generation
 * collections. Built into pprof-format in place of its own (injector/build.mjs, `lazyStringTable`),
 * in every bundle that carries a copy: the native profiler's serializer builds its profiles with it.
 *
 * pprof-format keeps each table's positions and encodings in module-level WeakMaps (its private
 * fields, compiled for older runtimes). V8 treats the values of an old-generation WeakMap as live
 * in a young-generation collection, so every string a profile collected, its position and its two
 * encoded buffers survived each scavenge until the next full collection, and were promoted to the
 * old generation. It also encoded each string on insertion, which the agent's own encoder
 * (pprof-encode.ts) never reads.
 *
 * Here the positions are an ordinary field and the encodings are made only when pprof-format's own
 * encoder asks for them. The table's contract is unchanged: `strings`, `dedup`, `encode`,
 * `encodedLength`, `_encodeToBuffer`, `_decodeString` and the static encoders. One difference: a
 * decoded string is encoded again from its text, so bytes that were not valid UTF-8 come back as
 * U+FFFD.
 */

/** The parts of pprof-format's StringTable class this one takes over. */
interface OriginalStringTable {
  _encodeString(string: string): Uint8Array;
  _encodeStringFromUtf8(buffer: Uint8Array): Uint8Array;
}

/** pprof-format's StringTable, replaced: `original` is its own class (for its static encoders), `emptyTableToken` its module's token. */
export function lazyStringTable(original: OriginalStringTable, emptyTableToken: symbol): unknown {
  const encodingsOf = (strings: readonly string[]): Uint8Array[] => strings.map((s) => original._encodeString(s));
  return class StringTable {
    readonly strings: string[] = [];
    private readonly positions = new Map<string, number>();

    constructor(tok?: symbol) {
      if (tok !== emptyTableToken) this.dedup('');
    }

    static _encodeStringFromUtf8(buffer: Uint8Array): Uint8Array {
      return original._encodeStringFromUtf8(buffer);
    }

    static _encodeString(string: string): Uint8Array {
      return original._encodeString(string);
    }

    get encodedLength(): number {
      let size = 0;
      for (const encoded of encodingsOf(this.strings)) size += encoded.length;
      return size;
    }

    _encodeToBuffer(buffer: Uint8Array, offset: number): number {
      for (const encoded of encodingsOf(this.strings)) {
        buffer.set(encoded, offset);
        offset += encoded.length;
      }
      return offset;
    }

    encode(buffer: Uint8Array = new Uint8Array(this.encodedLength)): Uint8Array {
      this._encodeToBuffer(buffer, 0);
      return buffer;
    }

    dedup(string: string | number): number {
      if (typeof string === 'number') return string;
      let position = this.positions.get(string);
      if (position === undefined) {
        position = this.strings.push(string) - 1;
        this.positions.set(string, position);
      }
      return position;
    }

    _decodeString(buffer: Uint8Array): void {
      const string = new TextDecoder().decode(buffer);
      this.positions.set(string, this.strings.push(string) - 1);
    }
  };
}
