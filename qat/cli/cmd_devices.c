#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "qat/cli/cli.h"
#include "qat/context.h"

int cmd_devices(int argc, char **argv)
{
    static const struct option options[] = {
        { "device", required_argument, NULL, 'D' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
    };
    const char *selector = NULL;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 'D': selector = optarg; break;
        case 'h':
            printf("usage: qat devices [--device N|NAME]\n\n"
                   "Lists the Vulkan devices; '*' marks the one qat uses (preference: discrete >\n"
                   "integrated > virtual > cpu, overridden by --device or QAT_DEVICE).\n");
            return 0;
        default: return cli_bad_option("devices", c, argv[optind - 1]);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "qat devices: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    qat_device_info *devs;
    int count, chosen;
    qat_status st = qat_devices_list(selector, &devs, &count, &chosen);
    for (int i = 0; i < count; i++)
        printf("%c %d  %-40s %-10s Vulkan %u.%u.%u  %s %s  %.1f GiB\n", i == chosen ? '*' : ' ', i, devs[i].name,
               devs[i].type_name, VK_API_VERSION_MAJOR(devs[i].api_version), VK_API_VERSION_MINOR(devs[i].api_version),
               VK_API_VERSION_PATCH(devs[i].api_version), devs[i].driver_name, devs[i].driver_info,
               (double)devs[i].device_local_bytes / (1024.0 * 1024 * 1024));
    free(devs);
    if (st != QAT_OK) return cli_fail("devices");
    return 0;
}
