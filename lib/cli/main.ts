#!/usr/bin/env node
// The `llava-native` command line: demo, describe, chat, info, pull, ls, rm, rpc-server. Built on the public API only.
import * as fs from 'node:fs'
import * as path from 'node:path'
import { Command, CommanderError } from 'commander'
import * as chat from './commands/chat'
import * as demo from './commands/demo'
import * as describe from './commands/describe'
import * as info from './commands/info'
import * as models from './commands/models'
import * as rpcServer from './commands/rpc-server'
import { EXIT, EXIT_CODES_HELP, reportError } from './exit'

function version(): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version
  } catch {
    return 'unknown'
  }
}

export function buildProgram(): Command {
  const program = new Command('llava-native')
    .description('Run LLaVA-style vision-language models (GGUF) from the command line, on llama.cpp.')
    .version(version(), '-V, --version')
    // Settings copied to every command defined after them:
    .exitOverride()
    .configureOutput({
      // commander's parse errors ("error: unknown option '--x'\n(Did you mean --y?)"), on one line
      outputError: (message, write) => write(`llava-native: ${message.replace(/\s*\n\s*/g, ' ').trim()}\n`),
    })
  demo.register(program)
  describe.register(program)
  chat.register(program)
  info.register(program)
  models.register(program)
  rpcServer.register(program)
  program.addHelpText(
    'after',
    `
Start here:
  npx llava-native demo

Run 'llava-native <command> --help' for a command's flags.

${EXIT_CODES_HELP}`,
  )
  return program
}

/** Runs the command line and resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram()
  let verbose = false
  program.hook('preAction', (_program, command) => {
    verbose = Boolean(command.opts().verbose)
  })
  try {
    await program.parseAsync(argv)
    return EXIT.OK
  } catch (err) {
    // --help and --version end with exitCode 0; every other parse error is a usage error
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE
    return reportError(err, verbose)
  }
}

if (require.main === module) {
  // A reader that goes away (`llava-native describe … | head -1`) ends the command quietly.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(EXIT.OK)
    throw err
  })
  void main(process.argv).then((code) => {
    process.exitCode = code
  })
}
