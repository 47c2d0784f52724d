/* queue_cli.h - the "smtphook queue" command. */
#ifndef SMTPHOOK_QUEUE_CLI_H
#define SMTPHOOK_QUEUE_CLI_H

/* queue_cli_main - run "smtphook queue ARGS..." (argv[0] is "queue"); the exit status. */
int queue_cli_main(int argc, char **argv);

#endif
