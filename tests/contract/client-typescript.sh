#!/bin/sh
# CTest contract_client_typescript: a TypeScript client generated from the spec compiles.
#  1. openapi-typescript (pinned in package.json) turns SPEC into OUT/offlineq-api.d.ts;
#  2. tsc --strict --noEmit checks client-example.ts (the README's examples through
#     openapi-fetch) against those types, via a tsconfig written to OUT;
#  3. readme-bodies.mjs validates every JSON body README posts against the spec.
# Usage: client-typescript.sh SPEC README OUT
set -eu
spec=$1 readme=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
bin=$here/node_modules/.bin
rm -rf "$out" && mkdir -p "$out"
"$bin/openapi-typescript" "$spec" --output "$out/offlineq-api.d.ts"
cat >"$out/tsconfig.json" <<JSON
{
  "compilerOptions": {
    "strict": true,
    "noEmit": true,
    "target": "es2022",
    "lib": ["es2022", "dom"],
    "module": "esnext",
    "moduleResolution": "bundler",
    "types": [],
    "noUnusedLocals": true,
    "exactOptionalPropertyTypes": false,
    "paths": { "offlineq-api": ["./offlineq-api.d.ts"] }
  },
  "files": ["$here/client-example.ts"]
}
JSON
"$bin/tsc" --strict --noEmit -p "$out/tsconfig.json"
echo "tsc --strict: client-example.ts compiles against the generated types"
node "$here/readme-bodies.mjs" "$spec" "$readme"
