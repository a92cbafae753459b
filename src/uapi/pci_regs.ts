// <uapi/linux/pci_regs.h>: the registers and bits the model emulates.
export const PCI_VENDOR_ID = 0x00, PCI_DEVICE_ID = 0x02, PCI_COMMAND = 0x04, PCI_STATUS = 0x06;
export const PCI_COMMAND_IO = 0x1, PCI_COMMAND_MEMORY = 0x2, PCI_COMMAND_MASTER = 0x4, PCI_COMMAND_INTX_DISABLE = 0x400;
export const PCI_STATUS_CAP_LIST = 0x10;
export const PCI_CLASS_REVISION = 0x08, PCI_HEADER_TYPE = 0x0e;
export const PCI_BASE_ADDRESS_0 = 0x10;
export const PCI_BASE_ADDRESS_SPACE_IO = 0x1, PCI_BASE_ADDRESS_MEM_TYPE_64 = 0x4, PCI_BASE_ADDRESS_MEM_PREFETCH = 0x8;
export const PCI_ROM_ADDRESS = 0x30, PCI_CAPABILITY_LIST = 0x34;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c, PCI_SUBSYSTEM_ID = 0x2e;
export const PCI_CAP_ID_PM = 0x01, PCI_CAP_ID_MSI = 0x05, PCI_CAP_ID_MSIX = 0x11, PCI_CAP_ID_EXP = 0x10;
export const PCI_INTERRUPT_PIN = 0x3d;
/** MSI: Message Control; Multiple Message Capable is bits 3:1 (log2 of the vectors), 64-bit is bit 7 */
export const PCI_MSI_FLAGS = 2, PCI_MSI_FLAGS_QMASK = 0x0e, PCI_MSI_FLAGS_64BIT = 0x80;
export const PCI_PM_CTRL = 4, PCI_PM_CTRL_STATE_MASK = 0x3, PCI_PM_CTRL_NO_SOFT_RESET = 0x8;
/** PM capabilities (PMC): which of D1 and D2 the function supports */
export const PCI_PM_PMC = 2, PCI_PM_CAP_D1 = 0x0200, PCI_PM_CAP_D2 = 0x0400;
export const PCI_MSIX_FLAGS = 2, PCI_MSIX_TABLE = 4, PCI_MSIX_PBA = 8;
/** MSI-X Message Control: MSI-X Enable */
export const PCI_MSIX_FLAGS_ENABLE = 0x8000;
export const PCI_EXP_DEVCAP = 4, PCI_EXP_DEVCAP_FLR = 0x10000000;
export const PCI_EXP_DEVCTL = 8, PCI_EXP_DEVCTL_BCR_FLR = 0x8000;
export const PCI_D0 = 0, PCI_D1 = 1, PCI_D2 = 2, PCI_D3hot = 3, PCI_D3cold = 4;
export const PCI_CFG_SPACE_SIZE = 256, PCI_CFG_SPACE_EXP_SIZE = 4096;
export const PCI_STD_NUM_BARS = 6;
