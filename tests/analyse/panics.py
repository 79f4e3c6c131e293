# ruff: noqa: E501  (console lines are pasted verbatim)
"""Real crash reports from the VM tier's serial consoles (tests/vm, `crash-cycle`), as the
crashed kernels logged them: sysrq crashes of five kernels on both architectures and
the oops of the test module. Register dumps and user-space `?` noise are cut short
where they add nothing; every line kept is verbatim."""

from __future__ import annotations

# Debian 12, 6.1.0-57-cloud-amd64
BOOKWORM_X86_64 = """\
[   12.071738] sysrq: Trigger a crash
[   12.072043] Kernel panic - not syncing: sysrq triggered crash
[   12.072300] CPU: 0 PID: 197 Comm: kdumpcrasher Kdump: loaded Not tainted 6.1.0-57-cloud-amd64 #1  Debian 6.1.192-3
[   12.072463] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   12.072632] Call Trace:
[   12.073199]  <TASK>
[   12.073328]  dump_stack_lvl+0x44/0x5c
[   12.073575]  panic+0x118/0x2f4
[   12.073629]  ? _printk+0x68/0x83
[   12.073676]  sysrq_handle_crash+0x16/0x20
[   12.073737]  __handle_sysrq.cold+0x44/0x11c
[   12.073782]  write_sysrq_trigger+0x24/0x40
[   12.073825]  proc_reg_write+0x56/0xa0
[   12.073858]  vfs_write+0xc7/0x3f0
[   12.073888]  ? alloc_fd+0xb5/0x150
[   12.073932]  ksys_write+0x6b/0xf0
[   12.073957]  do_syscall_64+0x5d/0x90
[   12.073999]  ? __x64_sys_fcntl+0x90/0xc0
[   12.074027]  ? exit_to_user_mode_prepare+0x44/0x240
[   12.074071]  ? exit_to_user_mode_prepare+0x44/0x240
[   12.074113]  ? syscall_exit_to_user_mode+0x1e/0x40
[   12.074160]  ? do_syscall_64+0x69/0x90
[   12.074210]  ? filp_close+0x5b/0x70
[   12.074251]  ? do_dup2+0x96/0xd0
[   12.074289]  ? exit_to_user_mode_prepare+0x44/0x240
[   12.074331]  ? syscall_exit_to_user_mode+0x1e/0x40
[   12.074375]  ? do_syscall_64+0x69/0x90
[   12.074399]  ? exit_to_user_mode_prepare+0x44/0x240
[   12.074427]  entry_SYSCALL_64_after_hwframe+0x6e/0xd8
[   12.074620]  </TASK>
"""

# Debian 12, 6.1.0-57-cloud-arm64
BOOKWORM_ARM64 = """\
[   13.620582] sysrq: Trigger a crash
[   13.621012] Kernel panic - not syncing: sysrq triggered crash
[   13.621525] CPU: 0 PID: 193 Comm: kdumpcrasher Kdump: loaded Not tainted 6.1.0-57-cloud-arm64 #1  Debian 6.1.192-3
[   13.622188] Hardware name: linux,dummy-virt (DT)
[   13.622615] Call trace:
[   13.622911]  dump_backtrace+0xe4/0x140
[   13.623383]  show_stack+0x20/0x30
[   13.623472]  dump_stack_lvl+0x64/0x80
[   13.623527]  dump_stack+0x18/0x34
[   13.623552]  panic+0x184/0x364
[   13.623574]  sysrq_reset_seq_param_set+0x0/0xa0
[   13.623606]  __handle_sysrq+0x90/0x19c
[   13.623630]  write_sysrq_trigger+0x7c/0xc0
[   13.623656]  proc_reg_write+0xac/0x100
[   13.623684]  vfs_write+0xdc/0x3a0
[   13.623710]  ksys_write+0x7c/0x11c
[   13.623732]  __arm64_sys_write+0x24/0x30
[   13.623755]  invoke_syscall+0x68/0xe0
[   13.623780]  el0_svc_common.constprop.0+0x4c/0xf4
[   13.623808]  do_el0_svc+0x2c/0x9c
[   13.623831]  el0_svc+0x34/0xdc
[   13.623851]  el0t_64_sync_handler+0xf4/0x120
[   13.623877]  el0t_64_sync+0x18c/0x190
[   13.624209] SMP: stopping secondary CPUs
[   13.624770] Starting crashdump kernel...
[   13.625088] Bye!
"""

# Debian 13, 6.12.118+deb13-cloud-arm64
TRIXIE_ARM64 = """\
[   77.282410] sysrq: Trigger a crash
[   77.282971] Kernel panic - not syncing: sysrq triggered crash
[   77.283312] CPU: 1 UID: 0 PID: 237 Comm: kdumpcrasher Kdump: loaded Not tainted 6.12.118+deb13-cloud-arm64 #1  Debian 6.12.118-1
[   77.283455] Hardware name: linux,dummy-virt (DT)
[   77.283604] Call trace:
[   77.283648]  dump_backtrace+0xd8/0x130
[   77.283858]  show_stack+0x20/0x38
[   77.283905]  dump_stack_lvl+0x60/0x80
[   77.283934]  dump_stack+0x18/0x28
[   77.283957]  vpanic+0x11c/0x338
[   77.283983]  trace_suspend_resume+0x0/0x70
[   77.284014]  sysrq_handle_crash+0x20/0x28
[   77.284044]  __handle_sysrq+0xa4/0x1a8
[   77.284070]  write_sysrq_trigger+0xc8/0xe0
[   77.284098]  proc_reg_write+0xa4/0x100
[   77.284126]  vfs_write+0xdc/0x3b0
[   77.284150]  ksys_write+0x7c/0x120
[   77.284173]  __arm64_sys_write+0x24/0x38
[   77.284199]  invoke_syscall+0x60/0xe0
[   77.284226]  el0_svc_common.constprop.0+0x48/0xf0
[   77.284256]  do_el0_svc+0x24/0x38
[   77.284281]  el0_svc+0x38/0x148
[   77.284304]  el0t_64_sync_handler+0xc8/0xe0
[   77.284331]  el0t_64_sync+0x190/0x198
[   77.284630] SMP: stopping secondary CPUs
[   77.285273] Starting crashdump kernel...
[   77.285428] Bye!
"""

# trixie-backports, 7.3.4+deb13-cloud-amd64
BACKPORTS_X86_64 = """\
[   53.951981] sysrq: Trigger a crash
[   53.952259] Kernel panic - not syncing: sysrq triggered crash
[   53.952940] CPU: 0 UID: 0 PID: 207 Comm: kdumpcrasher Kdump: loaded Not tainted 7.3.4+deb13-cloud-amd64 #1 PREEMPT(lazy)  Debian 7.3.4-1~bpo13+1
[   53.953135] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   53.953434] Call Trace:
[   53.953961]  <TASK>
[   53.954247]  dump_stack_lvl+0x5d/0x80
[   53.954527]  vpanic+0x166/0x360
[   53.954576]  panic+0x6b/0x70
[   53.954620]  sysrq_handle_crash+0x1a/0x20
[   53.954683]  __handle_sysrq.cold+0x91/0x141
[   53.954739]  write_sysrq_trigger+0x59/0xb0
[   53.954773]  proc_reg_write+0x5a/0xa0
[   53.954822]  vfs_write+0xcf/0x450
[   53.954873]  ksys_write+0x6b/0xe0
[   53.954917]  do_syscall_64+0xc2/0x520
[   53.955545]  entry_SYSCALL_64_after_hwframe+0x76/0x7e
[   53.956526]  </TASK>
"""

# trixie-backports, 7.3.4+deb13-cloud-arm64 (entries marked (C))
BACKPORTS_ARM64 = """\
[  222.654166] sysrq: Trigger a crash
[  222.654617] Kernel panic - not syncing: sysrq triggered crash
[  222.660347] CPU: 1 UID: 0 PID: 200 Comm: kdumpcrasher Kdump: loaded Not tainted 7.3.4+deb13-cloud-arm64 #1 PREEMPTLAZY  Debian 7.3.4-1~bpo13+1
[  222.663429] Hardware name: linux,dummy-virt (DT)
[  222.663734] Call trace:
[  222.664067]  show_stack+0x20/0x40 (C)
[  222.664423]  dump_stack_lvl+0x60/0x80
[  222.664454]  dump_stack+0x18/0x24
[  222.664479]  vpanic+0x1a0/0x3a0
[  222.664503]  panic+0x68/0x70
[  222.664525]  sysrq_handle_crash+0x24/0x38
[  222.664559]  __handle_sysrq+0xb0/0x250
[  222.664586]  write_sysrq_trigger+0xc8/0xe0
[  222.664614]  proc_reg_write+0xa4/0x100
[  222.664644]  vfs_write+0xdc/0x380
[  222.664672]  ksys_write+0x78/0x120
[  222.664696]  __arm64_sys_write+0x20/0x40
[  222.664723]  invoke_syscall+0xa4/0x120
[  222.664752]  el0_svc_common.constprop.0+0x48/0xf0
[  222.664783]  do_el0_svc+0x24/0x38
[  222.664808]  el0_svc+0x40/0x268
[  222.664837]  el0t_64_sync_handler+0xa0/0xe8
[  222.664866]  el0t_64_sync+0x198/0x1a0
[  222.665234] SMP: stopping secondary CPUs
[  222.666197] Starting crashdump kernel...
[  222.666332] Bye!
"""

# Debian 11, 5.10.0-32-cloud-amd64
BULLSEYE_X86_64 = """\
[   33.871878] sysrq: Trigger a crash
[   33.872590] Kernel panic - not syncing: sysrq triggered crash
[   33.873164] CPU: 0 PID: 184 Comm: kdumpcrasher Kdump: loaded Not tainted 5.10.0-32-cloud-amd64 #1 Debian 5.10.223-1
[   33.873233] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   33.873374] Call Trace:
[   33.873925]  dump_stack+0x6b/0x83
[   33.873925]  panic+0x114/0x2f1
[   33.873925]  sysrq_handle_crash+0x16/0x20
[   33.873925]  __handle_sysrq.cold+0x43/0x11a
[   33.873925]  write_sysrq_trigger+0x24/0x40
[   33.873925]  proc_reg_write+0x51/0x90
[   33.873925]  vfs_write+0xc4/0x270
[   33.873925]  ksys_write+0x5f/0xe0
[   33.873925]  do_syscall_64+0x33/0x40
[   33.873925]  entry_SYSCALL_64_after_hwframe+0x67/0xd1
"""

# Debian 12, 6.1.0-57-cloud-amd64: tests/vm/harness/oops.py's module, panic_on_oops=1 (no panic line: oops_end() goes straight to the capture kernel)
OOPS_X86_64 = """\
[   59.151549] kdumpctl_oops: loading out-of-tree module taints kernel.
[   59.151879] kdumpctl_oops: module verification failed: signature and/or required key missing - tainting kernel
[   59.153955] BUG: kernel NULL pointer dereference, address: 0000000000000000
[   59.154261] #PF: supervisor write access in kernel mode
[   59.154306] #PF: error_code(0x0002) - not-present page
[   59.154378] PGD 183f067 P4D 183f067 PUD 25fdb067 PMD 0
[   59.154596] Oops: 0002 [#1] PREEMPT SMP NOPTI
[   59.154717] CPU: 0 PID: 198 Comm: insmod Kdump: loaded Tainted: G           OE      6.1.0-57-cloud-amd64 #1  Debian 6.1.192-3
[   59.155198] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   59.155324] RIP: 0010:kdumpctl_oops_write.constprop.0+0x5/0x1000 [kdumpctl_oops]
[   59.155753] Code: Unable to access opcode bytes at 0xffffffffc042dfdb.
[   59.155804] RSP: 0018:ffffd010c047bd60 EFLAGS: 00000246
[   59.155849] RAX: 0000000000000000 RBX: ffffffffc0439000 RCX: 0000000000000000
[   59.155890] RDX: 0000000000000000 RSI: ffffffffc0439000 RDI: ffffd010c047bd50
[   59.155929] RBP: ffff8b8066c0dee0 R08: 0000000000000010 R09: ffff8b8066c0dee0
[   59.155969] R10: ffff8b80422854b0 R11: ffff8b807e52c000 R12: ffffd010c047bd70
[   59.156008] R13: 0000000000000000 R14: 0000000000000000 R15: 0000000000000000
[   59.156087] FS:  000000000e3173c0(0000) GS:ffff8b807e200000(0000) knlGS:0000000000000000
[   59.156133] CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
[   59.156166] CR2: ffffffffc042dfdb CR3: 000000000184a000 CR4: 00000000000006b0
[   59.156337] Call Trace:
[   59.156795]  <TASK>
[   59.156795]  kdumpctl_oops_init+0xa/0x1000 [kdumpctl_oops]
[   59.156795]  do_one_initcall+0x59/0x220
[   59.156795]  do_init_module+0x4a/0x1f0
[   59.156795]  __do_sys_finit_module+0xac/0x120
[   59.156795]  do_syscall_64+0x5d/0x90
[   59.156795]  ? do_user_addr_fault+0x1b0/0x560
[   59.156795]  ? exit_to_user_mode_prepare+0x44/0x240
[   59.156795]  entry_SYSCALL_64_after_hwframe+0x6e/0xd8
[   59.156795] RIP: 0033:0x47fbe9
[   59.156795] Code: 08 89 e8 5b 5d c3 66 2e 0f 1f 84 00 00 00 00 00 90 48 89 f8 48 89 f7 48 89 d6 48 89 ca 4d 89 c2 4d 89 c8 4c 8b 4c 24 08 0f 05 <48> 3d 01 f0 ff ff 73 01 c3 48 c7 c1 e0 ff ff ff f7 d8 64 89 01 48
[   59.156795] RSP: 002b:00007ffda049d4e8 EFLAGS: 00000246 ORIG_RAX: 0000000000000139
[   59.156795] RAX: ffffffffffffffda RBX: 000000000e31f9a0 RCX: 000000000047fbe9
[   59.156795] RDX: 0000000000000000 RSI: 000000000e31f9a0 RDI: 0000000000000004
[   59.156795] RBP: 0000000000000004 R08: 000000000e31f9a0 R09: 0000000000000000
[   59.156795] R10: 0000000000000000 R11: 0000000000000246 R12: 000000000e31fb40
[   59.156795] R13: 000000000e31fb80 R14: 0000000000000000 R15: 0000000000000000
[   59.156795]  </TASK>
[   59.156795] Modules linked in: kdumpctl_oops(OE+) virtio_blk virtio_pci virtio_pci_legacy_dev virtio_pci_modern_dev virtio virtio_ring
[   59.156795] CR2: 0000000000000000
"""
